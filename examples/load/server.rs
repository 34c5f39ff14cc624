//! The server under test: a spawned child process on a loopback port with a temporary data dir,
//! or an already running one. Also reads memory and CPU time from `/proc`.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// Settings every spawned server gets: the load tool registers many users from one address, and
/// its servers take a free TURN port on loopback, so that they neither collide with other
/// servers on this machine (an "TURN relay is off" error in the log) nor listen beyond it.
const BASE_ENV: &[(&str, &str)] = &[
    ("CHINWAG_AUTH__REGISTRATIONS_PER_IP_PER_HOUR", "1000000"),
    ("CHINWAG_AUTH__HASH_CONCURRENCY", "2"),
    ("CHINWAG_TURN__LISTEN", "127.0.0.1:0"),
    ("CHINWAG_TURN__SOCKETS", "1"),
];

pub struct Server {
    pub addr: SocketAddr,
    pub pid: Option<u32>,
    child: Option<Child>,
    dir: Option<tempfile::TempDir>,
    /// Where the database lives: `data` in `dir` unless given (the disk-full proof puts it on a
    /// small mount).
    data_dir: Option<PathBuf>,
    /// The settings passed to a spawned server, for the report.
    pub env: Vec<(String, String)>,
    binary: Option<PathBuf>,
}

impl Server {
    /// Starts `binary serve` on a free loopback port and waits for `GET /healthz`.
    pub async fn spawn(binary: &Path, extra_env: &[(String, String)]) -> anyhow::Result<Server> {
        Self::spawn_in(binary, extra_env, None).await
    }

    /// Like [`Server::spawn`], with the database in `data_dir` (the log stays in a temporary dir).
    pub async fn spawn_in(binary: &Path, extra_env: &[(String, String)], data_dir: Option<PathBuf>) -> anyhow::Result<Server> {
        if !binary.is_file() {
            bail!(
                "server binary {} not found: build it with `cargo build --release`, or pass --server PATH or --addr HOST:PORT",
                binary.display()
            );
        }
        let dir = tempfile::Builder::new().prefix("chinwag-load-").tempdir().context("cannot create a temporary data dir")?;
        let mut env: Vec<(String, String)> = BASE_ENV.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        env.extend(extra_env.iter().cloned());
        let mut server = Server {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            pid: None,
            child: None,
            dir: Some(dir),
            data_dir,
            env,
            binary: Some(binary.to_path_buf()),
        };
        server.start_child(None).await?;
        Ok(server)
    }

    /// Stops a spawned server and starts it again on the same data dir (on a new port): a fresh
    /// process, without what registration left in its heap. Sessions survive the restart.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        if self.child.is_none() {
            return Ok(());
        }
        self.stop_child();
        self.start_child(None).await
    }

    /// SIGKILL: the process gets no chance to finish anything. Waits until it is gone.
    pub fn kill(&mut self) -> anyhow::Result<()> {
        let Some(mut child) = self.child.take() else { bail!("no server process to kill") };
        child.kill().context("kill the server")?;
        child.wait().context("wait for the killed server")?;
        Ok(())
    }

    /// Starts the killed server again on the same data dir and port, and waits for `/healthz`.
    pub async fn start_again(&mut self) -> anyhow::Result<()> {
        self.start_child(Some(self.addr.port())).await
    }

    /// Starts the server again on the same data dir and port without waiting for it to answer.
    pub fn launch_again(&mut self) -> anyhow::Result<()> {
        self.launch(Some(self.addr.port()))
    }

    async fn start_child(&mut self, port: Option<u16>) -> anyhow::Result<()> {
        self.launch(port)?;
        self.wait_healthy(Duration::from_secs(30)).await
    }

    /// Starts the process on `port` (a free one when `None`).
    fn launch(&mut self, port: Option<u16>) -> anyhow::Result<()> {
        let (Some(dir), Some(binary)) = (&self.dir, &self.binary) else {
            bail!("not a spawned server");
        };
        let addr = SocketAddr::from((
            [127, 0, 0, 1],
            match port {
                Some(p) => p,
                None => free_port()?,
            },
        ));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.path().join("server.log"))
            .context("cannot open the server log")?;
        let mut cmd = Command::new(binary);
        cmd.arg("serve")
            .arg("--listen")
            .arg(addr.to_string())
            .arg("--data-dir")
            .arg(self.data_dir.clone().unwrap_or_else(|| dir.path().join("data")))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().with_context(|| format!("cannot start {}", binary.display()))?;
        self.addr = addr;
        self.pid = Some(child.id());
        self.child = Some(child);
        Ok(())
    }

    /// Waits until the spawned server answers `GET /healthz`; fails if it exits first.
    pub async fn wait_healthy(&mut self, within: Duration) -> anyhow::Result<()> {
        let addr = self.addr;
        let http = reqwest::Client::builder().timeout(Duration::from_secs(1)).build()?;
        let deadline = Instant::now() + within;
        loop {
            if let Err(e) = self.check_alive() {
                bail!("{e}\n--- server log ---\n{}", self.log_tail());
            }
            if let Ok(r) = http.get(format!("http://{addr}/healthz")).send().await
                && r.status().is_success()
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                let tail = self.log_tail();
                self.stop_child();
                bail!("the server did not answer /healthz within {within:?}\n--- server log ---\n{tail}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A server that is already running; its memory is read only when its pid is known.
    pub fn attach(addr: SocketAddr, pid: Option<u32>) -> Server {
        Server { addr, pid, child: None, dir: None, data_dir: None, env: Vec::new(), binary: None }
    }

    /// The data dir of a spawned server.
    pub fn data_path(&self) -> Option<PathBuf> {
        self.data_dir.clone().or_else(|| self.dir.as_ref().map(|d| d.path().join("data")))
    }

    pub fn is_spawned(&self) -> bool {
        self.child.is_some()
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Fails when a spawned server has exited.
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        if let Some(child) = &mut self.child
            && let Some(status) = child.try_wait()?
        {
            bail!("the server exited: {status}");
        }
        Ok(())
    }

    pub fn rss_bytes(&self) -> Option<u64> {
        self.pid.and_then(rss_of)
    }

    pub fn cpu_secs(&self) -> Option<f64> {
        self.pid.and_then(cpu_secs_of)
    }

    fn log_path(&self) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| d.path().join("server.log"))
    }

    /// The last lines of a spawned server's log.
    pub fn log_tail(&self) -> String {
        let Some(p) = self.log_path() else {
            return String::new();
        };
        let text = strip_ansi(&std::fs::read_to_string(p).unwrap_or_default());
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Bytes of log written so far, to read what comes after with [`Server::log_since`].
    pub fn log_len(&self) -> u64 {
        self.log_path().and_then(|p| std::fs::metadata(p).ok()).map_or(0, |m| m.len())
    }

    /// The log written after `offset` bytes, without terminal colours.
    pub fn log_since(&self, offset: u64) -> String {
        let text = self.log_path().and_then(|p| std::fs::read(p).ok()).unwrap_or_default();
        strip_ansi(&String::from_utf8_lossy(text.get(offset as usize..).unwrap_or_default()))
    }

    /// Log lines of a spawned server at WARN or ERROR level (a crude health signal).
    pub fn log_problems(&self) -> usize {
        let Some(p) = self.log_path() else { return 0 };
        strip_ansi(&std::fs::read_to_string(p).unwrap_or_default())
            .lines()
            .filter(|l| l.contains(" WARN ") || l.contains(" ERROR ") || l.contains("panicked"))
            .count()
    }

    /// Stops a spawned server: SIGTERM (graceful), then SIGKILL after 20 s. Removes its data.
    pub fn stop(&mut self) {
        self.stop_child();
        self.dir.take();
    }

    /// Stops a spawned server with SIGTERM and keeps its data; the exit status, `None` when it
    /// had to be killed or was not running.
    pub fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        self.stop_child()
    }

    fn stop_child(&mut self) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).stderr(Stdio::null()).status();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match child.try_wait() {
                Ok(Some(status)) => return Some(status),
                Err(_) => return None,
                Ok(None) if Instant::now() > deadline => {
                    eprintln!("the server did not stop within 20 s; killing it");
                    let _ = child.kill();
                    let _ = child.wait();
                    return None;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Removes terminal colour sequences (`ESC [ ... m`), which the server's text log may carry.
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn free_port() -> anyhow::Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").context("cannot find a free port")?;
    Ok(l.local_addr()?.port())
}

/// Resident memory of a process, from `/proc/<pid>/status`.
pub fn rss_of(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// User plus system CPU seconds of a process, from `/proc/<pid>/stat`.
pub fn cpu_secs_of(pid: u32) -> Option<f64> {
    cpu_from_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// CPU seconds of this process.
pub fn self_cpu_secs() -> f64 {
    std::fs::read_to_string("/proc/self/stat").ok().and_then(|s| cpu_from_stat(&s)).unwrap_or(0.0)
}

fn cpu_from_stat(stat: &str) -> Option<f64> {
    // The command name may hold spaces and parentheses: fields are counted after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After ')': state is field 3 of proc(5), so utime (14) and stime (15) are at 11 and 12.
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / clock_ticks())
}

fn clock_ticks() -> f64 {
    static TICKS: OnceLock<f64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// CPU seconds the whole machine spent busy (all cores, everything but idle and iowait), and
/// stolen by the hypervisor, from `/proc/stat`.
pub fn machine_busy_secs() -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3)? + v.get(4)?;
    let steal = *v.get(7)?;
    Some(((total - idle - steal) as f64 / clock_ticks(), steal as f64 / clock_ticks()))
}

/// CPU use during a measured window: this process, the server, and everything else on the
/// machine (other builds and tests share these cores).
pub struct CpuWindow {
    wall: std::time::Instant,
    me: f64,
    server: Option<f64>,
    machine: Option<(f64, f64)>,
}

pub struct CpuUse {
    pub wall: f64,
    pub me: f64,
    pub server: Option<f64>,
    /// Busy CPU seconds of every other process on the machine.
    pub others: Option<f64>,
    pub steal: Option<f64>,
}

impl CpuWindow {
    pub fn start(server: &Server) -> CpuWindow {
        CpuWindow { wall: std::time::Instant::now(), me: self_cpu_secs(), server: server.cpu_secs(), machine: machine_busy_secs() }
    }

    pub fn end(&self, server: &Server) -> CpuUse {
        let me = self_cpu_secs() - self.me;
        let srv = match (self.server, server.cpu_secs()) {
            (Some(a), Some(b)) => Some(b - a),
            _ => None,
        };
        let (others, steal) = match (self.machine, machine_busy_secs()) {
            (Some((b0, s0)), Some((b1, s1))) => (Some((b1 - b0 - me - srv.unwrap_or(0.0)).max(0.0)), Some(s1 - s0)),
            _ => (None, None),
        };
        CpuUse { wall: self.wall.elapsed().as_secs_f64(), me, server: srv, others, steal }
    }
}

impl CpuUse {
    pub fn line(&self) -> String {
        let core = |s: f64| format!("{s:.1} s ({:.0}% of a core)", s / self.wall.max(1e-9) * 100.0);
        format!(
            "CPU over {:.1} s: server {}, load tool {}, other processes {}{}",
            self.wall,
            self.server.map_or("?".into(), core),
            core(self.me),
            self.others.map_or("?".into(), core),
            self.steal.filter(|s| *s > 0.05).map_or(String::new(), |s| format!(", stolen {s:.1} s"))
        )
    }

    pub fn json(&self) -> serde_json::Value {
        let r = |x: f64| (x * 100.0).round() / 100.0;
        serde_json::json!({
            "wall_s": r(self.wall),
            "server_cpu_s": self.server.map(r),
            "load_tool_cpu_s": r(self.me),
            "other_processes_cpu_s": self.others.map(r),
            "steal_s": self.steal.map(r),
        })
    }
}

/// Waits (at most `max`) until the machine has been nearly idle for 3 s: other builds and tests
/// share these 2 cores and would otherwise be measured along with the server. Returns the
/// seconds waited and whether it was quiet.
pub async fn wait_quiet(max: Duration) -> (f64, bool) {
    let started = Instant::now();
    if max.is_zero() {
        return (0.0, false);
    }
    loop {
        let before = machine_busy_secs();
        tokio::time::sleep(Duration::from_secs(3)).await;
        let busy = match (before, machine_busy_secs()) {
            (Some((a, _)), Some((b, _))) => (b - a) / 3.0,
            _ => return (started.elapsed().as_secs_f64(), false),
        };
        // Our own idle sockets and the server's pings cost a few percent of a core.
        if busy < 0.25 {
            return (started.elapsed().as_secs_f64(), true);
        }
        if started.elapsed() >= max {
            eprintln!("load: the machine is still busy ({:.0}% of a core in use); measuring anyway", busy * 100.0);
            return (started.elapsed().as_secs_f64(), false);
        }
    }
}
