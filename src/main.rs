//! The `chinwag` command: a thin CLI over the library's `run`.

use std::path::PathBuf;
use std::process::ExitCode;

use chinwag::config::{Config, LogFormat, Overrides};
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(name = "chinwag", version, about = "A self-hosted chat server in one binary")]
struct Cli {
    /// A TOML settings file (see `chinwag config` for every key).
    #[arg(long, global = true, env = "CHINWAG_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args)]
struct ServerArgs {
    /// Address and port to listen on [default: 0.0.0.0:8080]
    #[arg(long)]
    listen: Option<std::net::SocketAddr>,
    /// Directory for the database and files [default: ./chinwag-data]
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve(ServerArgs),
    /// Print the effective configuration (defaults, file, environment, flags), secrets hidden.
    Config(ServerArgs),
}

fn load(cli_config: Option<&std::path::Path>, args: &ServerArgs) -> Result<Config, String> {
    let overrides = Overrides { listen: args.listen, data_dir: args.data_dir.clone() };
    Config::load(cli_config, std::env::vars(), &overrides).map_err(|e| e.to_string())
}

fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CHINWAG_LOG").unwrap_or_else(|_| "info,tower_http=warn".into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Config(args) => match load(cli.config.as_deref(), &args) {
            Ok(c) => {
                print!("{}", c.to_toml_redacted());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("chinwag: {e}");
                ExitCode::from(2)
            }
        },
        Command::Serve(args) => {
            let config = match load(cli.config.as_deref(), &args) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("chinwag: {e}");
                    return ExitCode::from(2);
                }
            };
            init_logs(config.log_format);
            let rt = match tokio::runtime::Runtime::new() {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("chinwag: cannot start the runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match rt.block_on(serve(config)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e:#}");
                    eprintln!("chinwag: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    // Every socket is a file: take the hard limit rather than the often tiny default soft one.
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) if n < 4096 => tracing::warn!(limit = n, "the open-file limit is low; it caps concurrent connections"),
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "cannot raise the open-file limit"),
    }
    let listener =
        tokio::net::TcpListener::bind(config.listen).await.map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.listen))?;
    let shutdown = CancellationToken::new();
    let trigger = shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down");
        trigger.cancel();
    });
    chinwag::run(config, listener, shutdown).await
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
