//! `hookflow`: the embedded local server and the command-line client.

mod bench;
mod cli;
mod serve;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "hookflow",
    version,
    about = "Webhook gateway: receive webhooks, run pipelines, poll results"
)]
struct Cli {
    #[command(subcommand)]
    command: Subcommands,
}

#[derive(Subcommand)]
enum Subcommands {
    /// Run the whole stack in one process: API, storage and queue in a SQLite file.
    Serve(serve::ServeArgs),
    /// Run a management command against a server, like PIPEFORCE's `pi command`.
    Command(cli::CommandArgs),
    /// Measure receive throughput, latency and memory of a fresh local server.
    Bench(bench::BenchArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async {
        match cli.command {
            Subcommands::Serve(args) => serve::run(args).await,
            Subcommands::Command(args) => cli::run(args).await,
            Subcommands::Bench(args) => bench::run(args).await,
        }
    });
    match outcome {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
