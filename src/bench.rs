pub async fn run(_a: BenchArgs) -> anyhow::Result<std::process::ExitCode> {
    todo!()
}
#[derive(clap::Args)]
pub struct BenchArgs {}
