//! `hookflow`: the embedded local server and the command-line client.

mod bench;
mod bench_event_log;
mod cli;
mod help;
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
    #[command(after_long_help = help::SETTINGS)]
    Serve(serve::ServeArgs),
    /// Run a management command against a server, like PIPEFORCE's `pi command`.
    #[command(after_long_help = help::COMMANDS)]
    Command(cli::CommandArgs),
    /// Measure receive throughput, latency and memory of a fresh local server.
    Bench(bench::BenchArgs),
    /// Create the AWS tables, queue and bucket where missing (moto, LocalStack or a
    /// sandbox account) and print their settings as `KEY=value` lines.
    Provision(ProvisionArgs),
}

#[derive(clap::Args)]
struct ProvisionArgs {
    /// Name prefix of the resources.
    #[arg(long, default_value = hookflow_core::adapters::aws::DEFAULT_PREFIX, env = "HOOKFLOW_AWS_PREFIX")]
    aws_prefix: String,
}

async fn provision(args: ProvisionArgs) -> anyhow::Result<std::process::ExitCode> {
    let resources = hookflow_core::wiring::provision_aws(&args.aws_prefix)
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
    println!("HOOKFLOW_WEBHOOKS_TABLE={}", resources.webhooks_table);
    println!("HOOKFLOW_PIPELINES_TABLE={}", resources.pipelines_table);
    println!("HOOKFLOW_EVENTS_TABLE={}", resources.events_table);
    println!("HOOKFLOW_OUTGOING_TABLE={}", resources.outgoing_table);
    println!("HOOKFLOW_INVOCATIONS_TABLE={}", resources.invocations_table);
    println!("HOOKFLOW_QUEUE_URL={}", resources.queue_url);
    if let Some(url) = &resources.dead_letter_queue_url {
        println!("HOOKFLOW_DEAD_LETTER_QUEUE_URL={url}");
    }
    println!("HOOKFLOW_PAYLOAD_BUCKET={}", resources.payload_bucket);
    Ok(std::process::ExitCode::SUCCESS)
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
            Subcommands::Provision(args) => provision(args).await,
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
