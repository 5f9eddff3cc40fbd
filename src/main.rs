use clap::Parser;
use hop::config::{Cli, Command, LogArgs, LogFormat};

/// mimalloc instead of glibc malloc: under sustained load glibc's per-thread
/// arenas kept growing (about 0.1 MB/s in the mixed-traffic soak, flat with
/// one arena); mimalloc returns freed memory and keeps the resident size
/// flat (docs/benchmarks.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn init_tracing(log: &LogArgs) {
    let filter = tracing_subscriber::EnvFilter::try_new(&log.log_level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match log.log_format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .init(),
        LogFormat::Text => builder.init(),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut cli = Cli::parse();
    init_tracing(&cli.log);
    cli.resolve_secret_files()?;
    match cli.command {
        Command::Serve(config) => {
            let app = hop::app::Application::build(*config).await?;
            app.run_until(hop::app::shutdown_signal()).await
        }
        Command::Migrate(db) => hop::cli::migrate(db).await,
        Command::Shorten(args) => hop::cli::shorten(args).await,
        Command::Stats(args) => hop::cli::stats(args).await,
        Command::Rules(cmd) => hop::cli::rules(cmd).await,
        Command::AccessToken(args) => hop::cli::access_token(args).await,
        Command::Export(cmd) => hop::cli::export(cmd).await,
        Command::Webhooks(cmd) => hop::cli::webhooks(cmd).await,
        Command::Copy(args) => hop::cli::copy(args).await,
        Command::Import(cmd) => hop::cli::import(cmd).await,
        Command::Keys(cmd) => hop::cli::keys(cmd).await,
        Command::Geoip(cmd) => hop::cli::geoip(cmd).await,
        Command::Worker(config) => hop::app::run_worker(config, hop::app::shutdown_signal()).await,
    }
}
