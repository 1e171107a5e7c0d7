use clap::Parser;
use tinykube_apiserver::config::Flags;
use tracing_subscriber::EnvFilter;

fn main() -> anyhow::Result<()> {
    let flags = Flags::parse();
    let filter = EnvFilter::try_from_env("TINYKUBE_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    if flags.log_format == "json" {
        tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .init();
    } else {
        // Colours only for a terminal: not in log files nor the journal.
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
            .init();
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            r = tinykube_apiserver::run(flags) => r,
            _ = term.recv() => {
                tracing::info!("SIGTERM: stopping");
                Ok(())
            }
            _ = tokio::signal::ctrl_c() => {
                tracing::info!("interrupted: stopping");
                Ok(())
            }
        }
    })
}
