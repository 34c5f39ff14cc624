//! The `chinwag` command: a thin CLI over the library's `run`.

use std::path::PathBuf;
use std::process::ExitCode;

use chinwag::config::{Config, LogFormat, Overrides};
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    #[arg(long, global = true)]
    listen: Option<std::net::SocketAddr>,
    /// Directory for the database and files [default: ./chinwag-data]
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve(ServerArgs),
    /// Print the effective configuration (defaults, file, environment, flags), secrets hidden.
    Config(ServerArgs),
    /// Manage accounts from the command line (works whether or not the server is running).
    Admin {
        #[command(subcommand)]
        op: AdminOp,
        #[command(flatten)]
        args: ServerArgs,
    },
    /// Write a backup archive (database snapshot and files, with checksums) to FILE, also
    /// while the server runs.
    Backup {
        file: PathBuf,
        #[command(flatten)]
        args: ServerArgs,
    },
    /// Restore a backup archive into an empty data directory, verifying every checksum.
    Restore {
        file: PathBuf,
        #[command(flatten)]
        args: ServerArgs,
    },
    /// Export one user's data, or the whole server's, as JSON.
    Export {
        /// Only this user (username, phone or e-mail).
        #[arg(long)]
        user: Option<String>,
        /// Write to this file instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
        #[command(flatten)]
        args: ServerArgs,
    },
    /// Ask the running server's /healthz (on loopback when it listens on all addresses); exits
    /// 0 when it answers "ok". For container health checks: no curl needed.
    Healthcheck {
        /// Seconds to wait for the connection and for the answer.
        #[arg(long, default_value_t = 5)]
        timeout: u64,
        #[command(flatten)]
        args: ServerArgs,
    },
}

#[derive(Subcommand)]
enum AdminOp {
    /// Create an account. The password is read from standard input with --password-stdin,
    /// or generated and printed.
    CreateUser {
        username: String,
        /// Make the account a server administrator.
        #[arg(long)]
        admin: bool,
        #[arg(long)]
        password_stdin: bool,
    },
    /// Make a user a server administrator.
    Promote { username: String },
    /// Take administrator rights away (the last administrator keeps them).
    Demote { username: String },
    /// Set a new password (from --password-stdin, or generated and printed) and end the user's sessions.
    ResetPassword {
        username: String,
        #[arg(long)]
        password_stdin: bool,
    },
    /// List every account.
    List,
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

fn fail(e: impl std::fmt::Display) -> ExitCode {
    eprintln!("chinwag: {e}");
    ExitCode::FAILURE
}

fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Runtime::new().map_err(|e| fail(format!("cannot start the runtime: {e}")))
}

fn password(from_stdin: bool) -> Result<(String, bool), String> {
    if from_stdin {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).map_err(|e| e.to_string())?;
        Ok((line.trim_end_matches(['\r', '\n']).to_owned(), false))
    } else {
        let mut raw = [0u8; 12];
        rand::fill(&mut raw);
        Ok((raw.iter().map(|b| char::from(b"abcdefghjkmnpqrstuvwxyz23456789"[usize::from(*b) % 31])).collect(), true))
    }
}

/// Runs `cmd` on the data dir: directly when no server holds it, else through the server.
async fn console(data_dir: &std::path::Path, cmd: chinwag::console::Command) -> anyhow::Result<serde_json::Value> {
    use chinwag::store::{Store, StoreError, StoreOptions};
    match Store::open(data_dir, &StoreOptions::default()) {
        Ok(store) => {
            let out = chinwag::console::execute(&store, None, cmd).await;
            store.close().await;
            out
        }
        Err(StoreError::InUse(_)) => {
            let dir = data_dir.to_path_buf();
            tokio::task::spawn_blocking(move || chinwag::console::call(&dir, &cmd).map(|(v, _)| v["result"].clone())).await?
        }
        Err(e) => Err(e.into()),
    }
}

fn bar(len: u64, what: &str) -> indicatif::ProgressBar {
    let pb = indicatif::ProgressBar::new(len);
    pb.set_style(
        indicatif::ProgressStyle::with_template("{msg:>9} [{bar:40}] {pos}/{len}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    pb.set_message(what.to_owned());
    pb
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Admin { op, args } => {
            use chinwag::console::Command as C;
            let config = match load(cli.config.as_deref(), &args) {
                Ok(c) => c,
                Err(e) => return fail(e),
            };
            let (cmd, generated) = match op {
                AdminOp::CreateUser { username, admin, password_stdin } => match password(password_stdin) {
                    Ok((p, g)) => (C::CreateUser { username, password: p.clone(), admin }, g.then_some(p)),
                    Err(e) => return fail(e),
                },
                AdminOp::Promote { username } => (C::SetAdmin { username, admin: true }, None),
                AdminOp::Demote { username } => (C::SetAdmin { username, admin: false }, None),
                AdminOp::ResetPassword { username, password_stdin } => match password(password_stdin) {
                    Ok((p, g)) => (C::ResetPassword { username, password: p.clone() }, g.then_some(p)),
                    Err(e) => return fail(e),
                },
                AdminOp::List => (C::ListUsers, None),
            };
            let rt = match runtime() {
                Ok(rt) => rt,
                Err(code) => return code,
            };
            match rt.block_on(console(&config.data_dir, cmd)) {
                Ok(v) => {
                    println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
                    if let Some(p) = generated {
                        println!("password: {p}");
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => fail(e),
            }
        }
        Command::Export { user, out, args } => {
            let config = match load(cli.config.as_deref(), &args) {
                Ok(c) => c,
                Err(e) => return fail(e),
            };
            if !config.data_dir.join("chinwag.redb").exists() {
                return fail(format!("there is no Chinwag data in {}", config.data_dir.display()));
            }
            let rt = match runtime() {
                Ok(rt) => rt,
                Err(code) => return code,
            };
            match rt.block_on(console(&config.data_dir, chinwag::console::Command::Export { user })) {
                Ok(v) => {
                    let text = serde_json::to_string_pretty(&v).unwrap_or_default();
                    let written = match out {
                        Some(path) => std::fs::write(&path, text),
                        None => {
                            println!("{text}");
                            Ok(())
                        }
                    };
                    written.map_or_else(fail, |()| ExitCode::SUCCESS)
                }
                Err(e) => fail(e),
            }
        }
        Command::Backup { file, args } => {
            let config = match load(cli.config.as_deref(), &args) {
                Ok(c) => c,
                Err(e) => return fail(e),
            };
            let rt = match runtime() {
                Ok(rt) => rt,
                Err(code) => return code,
            };
            match rt.block_on(backup(&config.data_dir, &file)) {
                Ok(msg) => {
                    println!("{msg}");
                    ExitCode::SUCCESS
                }
                Err(e) => fail(e),
            }
        }
        Command::Restore { file, args } => {
            let config = match load(cli.config.as_deref(), &args) {
                Ok(c) => c,
                Err(e) => return fail(e),
            };
            let restored = std::fs::File::open(&file).map_err(|e| anyhow::anyhow!("cannot open {}: {e}", file.display())).and_then(|f| {
                let pb = bar(0, "restoring");
                let mut progress = |_: &str, done: u64, _: u64| pb.set_position(done);
                let m = chinwag::backup::restore(std::io::BufReader::new(f), &config.data_dir, &mut progress);
                pb.finish_and_clear();
                m
            });
            match restored {
                Ok(m) => {
                    println!(
                        "restored {} files into {} (schema {}), every checksum verified",
                        m.files.len(),
                        config.data_dir.display(),
                        m.schema_version
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => fail(e),
            }
        }
        Command::Healthcheck { timeout, args } => {
            let config = match load(cli.config.as_deref(), &args) {
                Ok(c) => c,
                Err(e) => return fail(e),
            };
            let addr = chinwag::healthcheck::target(config.listen);
            match chinwag::healthcheck::check(addr, std::time::Duration::from_secs(timeout)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(e),
            }
        }
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
            let rt = match chinwag::runtime::build() {
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

async fn backup(data_dir: &std::path::Path, file: &std::path::Path) -> anyhow::Result<String> {
    if file.exists() {
        anyhow::bail!("{} exists already; choose a new file", file.display());
    }
    if !data_dir.join("chinwag.redb").exists() {
        anyhow::bail!("there is no Chinwag data in {}", data_dir.display());
    }
    // From here on, a failure removes the partial archive (never a file that was there before).
    let result = write_backup(data_dir, file).await;
    if result.is_err() {
        let _ = std::fs::remove_file(file);
    }
    result
}

async fn write_backup(data_dir: &std::path::Path, file: &std::path::Path) -> anyhow::Result<String> {
    use chinwag::store::{Store, StoreError, StoreOptions};
    match Store::open(data_dir, &StoreOptions::default()) {
        Ok(store) => {
            let out = std::io::BufWriter::new(std::fs::OpenOptions::new().write(true).create_new(true).open(file)?);
            let pb = bar(0, "copying");
            let pb2 = pb.clone();
            let progress = Box::new(move |what: &str, done: u64, total: u64| {
                pb2.set_message(what.to_owned());
                pb2.set_length(total);
                pb2.set_position(done);
            });
            let m = chinwag::backup::create(&store, data_dir, out, progress).await;
            pb.finish_and_clear();
            store.close().await;
            let m = m?;
            Ok(format!("backed up {} files to {} (offline)", m.files.len(), file.display()))
        }
        Err(StoreError::InUse(_)) => {
            let (dir, file) = (data_dir.to_path_buf(), file.to_path_buf());
            tokio::task::spawn_blocking(move || -> anyhow::Result<String> {
                let (_, mut stream) = chinwag::console::call(&dir, &chinwag::console::Command::Backup)?;
                let pb = indicatif::ProgressBar::new_spinner();
                let mut out = std::io::BufWriter::new(std::fs::OpenOptions::new().write(true).create_new(true).open(&file)?);
                let n = std::io::copy(&mut pb.wrap_read(&mut stream), &mut out)?;
                std::io::Write::flush(&mut out)?;
                pb.finish_and_clear();
                if n == 0 {
                    anyhow::bail!("the server sent no archive");
                }
                Ok(format!("backed up {n} bytes to {} from the running server", file.display()))
            })
            .await?
        }
        Err(e) => Err(e.into()),
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
        let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) else {
            let _ = ctrl_c.await;
            return;
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
