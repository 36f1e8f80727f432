//! `[proxy] command`: the upstream's process, supervised like a terminal would never do
//! it. Started with the server in a process group of its own (so `runserver`'s
//! autoreloader child goes with it), watched until its address answers, restarted with
//! backoff when it exits, stopped with the server (SIGTERM to the group, SIGKILL after a
//! grace period). Its output lines become `upstream_output` events and a short tail for
//! the 502 page.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use parking_lot::Mutex;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::{Child, Command};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep, timeout};
use tokio_util::sync::CancellationToken;
use ts_rs::TS;

use crate::auth;
use crate::config::{TokenSource, UpstreamUrl};
use crate::events::{Event, EventKind};

/// How long the group has to exit after SIGTERM before it gets SIGKILL.
pub const TERM_GRACE: Duration = Duration::from_secs(5);
/// First wait before a restart; doubled after each quick exit, up to [`BACKOFF_MAX`].
const BACKOFF_MIN: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// A process that ran this long before exiting is restarted without backoff.
const STABLE_AFTER: Duration = Duration::from_secs(10);
/// Quick exits in a row that make a crash loop.
const CRASH_LOOP_AFTER: u32 = 3;
/// How often the upstream's address is tried while the command starts.
const READY_POLL: Duration = Duration::from_millis(100);
/// Output lines kept for the 502 page.
pub const TAIL_LINES: usize = 40;
/// Longest output line kept; a process that prints megabytes without a newline costs
/// this much, not its whole output.
const MAX_LINE: usize = 4 << 10;

/// What the command is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum ProcessState {
    /// Started; its address does not answer yet.
    Starting,
    /// Its address answers.
    Ready,
    /// It exited; a restart is scheduled.
    Exited,
    /// It exited quickly several times in a row; restarts continue with longer waits.
    CrashLoop,
    /// Stopped with the server.
    Stopped,
}

/// The command in a stats snapshot.
#[derive(Debug, Clone, Serialize, TS)]
pub struct ProcessStatus {
    /// The command line.
    pub command: String,
    /// What it is doing.
    pub state: ProcessState,
    /// Its process id (the group's id too), while it runs.
    #[ts(optional)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// Its last exit code (negative: killed by that signal).
    #[ts(optional)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// Restarts since the server started.
    pub restarts: u64,
    /// One line for people: `ready at http://127.0.0.1:8001 after 1.4s`.
    pub detail: String,
}

/// The supervised command of one server run.
#[derive(Debug)]
pub struct Process {
    command: String,
    cwd: Option<PathBuf>,
    env: BTreeMap<String, String>,
    upstream: UpstreamUrl,
    /// Where tokens travel, so the output's copies of them are redacted.
    token_sources: Vec<TokenSource>,
    status: watch::Sender<ProcessStatus>,
    tail: Mutex<VecDeque<String>>,
}

impl Process {
    /// A command not started yet.
    pub fn new(
        command: String,
        cwd: Option<PathBuf>,
        env: BTreeMap<String, String>,
        upstream: UpstreamUrl,
        token_sources: Vec<TokenSource>,
    ) -> Self {
        let status = ProcessStatus {
            command: command.clone(),
            state: ProcessState::Starting,
            pid: None,
            exit_code: None,
            restarts: 0,
            detail: "starting".into(),
        };
        Self {
            command,
            cwd,
            env,
            upstream,
            token_sources,
            status: watch::channel(status).0,
            tail: Mutex::new(VecDeque::new()),
        }
    }

    /// The command line.
    pub fn command(&self) -> &str {
        &self.command
    }

    /// Where it runs.
    pub fn cwd(&self) -> Option<&std::path::Path> {
        self.cwd.as_deref()
    }

    /// What it is doing now.
    pub fn status(&self) -> ProcessStatus {
        self.status.borrow().clone()
    }

    /// Its last output lines, oldest first.
    pub fn tail(&self) -> Vec<String> {
        self.tail.lock().iter().cloned().collect()
    }

    /// Waits while it is starting, for at most `within`.
    pub async fn wait_ready(&self, within: Duration) {
        let mut rx = self.status.subscribe();
        let _ = timeout(within, rx.wait_for(|s| s.state != ProcessState::Starting)).await;
    }

    fn set(&self, f: impl FnOnce(&mut ProcessStatus)) -> ProcessStatus {
        self.status.send_modify(f);
        self.status()
    }

    /// Runs the command until `stop`, restarting it when it exits; `emit` records events.
    /// Returns once the process group is gone.
    pub async fn run(
        self: Arc<Self>,
        emit: impl Fn(Event) + Clone + Send + Sync + 'static,
        stop: CancellationToken,
    ) {
        let mut backoff = BACKOFF_MIN;
        let mut quick_exits = 0;
        loop {
            if stop.is_cancelled() {
                break;
            }
            if answers(&self.upstream).await {
                let port = self.upstream.port();
                // Walking /proc blocks: off the runtime's workers.
                let holder = tokio::task::spawn_blocking(move || crate::portinfo::holder_of(port))
                    .await
                    .ok()
                    .flatten()
                    .map(|h| format!(" ({h})"))
                    .unwrap_or_default();
                emit(state_event(
                    format!(
                        "{} already answers before the command starts: another server holds it{holder} (the command will likely fail to listen)",
                        self.upstream,
                    ),
                    None,
                ));
            }
            let started = Instant::now();
            let output = CancellationToken::new();
            let (mut child, group, readers) = match self.spawn(&emit, &output) {
                Ok(c) => c,
                Err(e) => {
                    // It will not fix itself soon: counted as a quick exit.
                    quick_exits += 1;
                    let why = format!("cannot start `{}`: {e}", self.command);
                    let s = self.set(|s| {
                        s.state = if quick_exits >= CRASH_LOOP_AFTER {
                            ProcessState::CrashLoop
                        } else {
                            ProcessState::Exited
                        };
                        s.pid = None;
                        s.detail = why.clone();
                    });
                    emit(state_event(s.detail, None));
                    if wait_or_stop(backoff, &stop).await {
                        break;
                    }
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    continue;
                }
            };
            let pid = group.pid;
            self.set(|s| {
                s.state = ProcessState::Starting;
                s.pid = Some(pid);
                s.detail = format!("started (pid {pid}), waiting for {}", self.upstream);
            });
            emit(state_event(
                format!("started `{}` (pid {pid})", self.command),
                None,
            ));

            let ready = wait_until_answers(&self.upstream);
            tokio::pin!(ready);
            let mut is_ready = false;
            let exited = loop {
                tokio::select! {
                    status = child.wait() => break status.ok(),
                    _ = &mut ready, if !is_ready => {
                        is_ready = true;
                        let took = started.elapsed().as_secs_f64();
                        let s = self.set(|s| {
                            s.state = ProcessState::Ready;
                            s.exit_code = None;
                            s.detail = format!("ready at {} after {took:.1}s", self.upstream);
                        });
                        emit(state_event(s.detail, None));
                    }
                    _ = stop.cancelled() => {
                        terminate(&mut child, &group).await;
                        finish_output(readers, &output).await;
                        let s = self.set(|s| {
                            s.state = ProcessState::Stopped;
                            s.pid = None;
                            s.detail = "stopped with the server".into();
                        });
                        emit(state_event(s.detail, None));
                        return;
                    }
                }
            };
            // Whatever the leader left behind (a reloader's child, a worker) goes too.
            drop(group);
            finish_output(readers, &output).await;
            let code = exited.map(exit_code);
            if started.elapsed() >= STABLE_AFTER {
                quick_exits = 0;
                backoff = BACKOFF_MIN;
            } else {
                quick_exits += 1;
            }
            let crash_loop = quick_exits >= CRASH_LOOP_AFTER;
            let how = match code {
                Some(c) if c < 0 => format!("killed by signal {}", -c),
                Some(c) => format!("exited with code {c}"),
                None => "exited".to_string(),
            };
            let s = self.set(|s| {
                s.state = if crash_loop {
                    ProcessState::CrashLoop
                } else {
                    ProcessState::Exited
                };
                s.pid = None;
                s.exit_code = code;
                s.detail = format!(
                    "{how}{}; restarting in {:.1}s",
                    if crash_loop {
                        format!(" ({quick_exits} quick exits in a row: crash loop)")
                    } else {
                        String::new()
                    },
                    backoff.as_secs_f64()
                );
            });
            emit(state_event(s.detail, code));
            if wait_or_stop(backoff, &stop).await {
                break;
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
            self.set(|s| s.restarts += 1);
        }
        let s = self.set(|s| {
            s.state = ProcessState::Stopped;
            s.detail = "stopped with the server".into();
        });
        emit(state_event(s.detail, None));
    }

    /// Starts the command in a new process group, its output read into events.
    fn spawn(
        self: &Arc<Self>,
        emit: &(impl Fn(Event) + Clone + Send + Sync + 'static),
        output: &CancellationToken,
    ) -> std::io::Result<(Child, Group, Vec<JoinHandle<()>>)> {
        let mut cmd = Command::new("sh");
        // stderr joins stdout inside the shell: one pipe keeps a traceback's lines in
        // the order the program wrote them.
        cmd.arg("-c")
            .arg(format!("exec 2>&1\n{}", self.command))
            // Python buffers a pipe's output in 8 KiB blocks: lines would show up late.
            .env("PYTHONUNBUFFERED", "1")
            .envs(&self.env)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0)
            .kill_on_drop(true);
        if let Some(dir) = &self.cwd {
            cmd.current_dir(dir);
        }
        let mut child = cmd.spawn().map_err(|e| match &self.cwd {
            Some(dir) if !dir.is_dir() => std::io::Error::new(
                e.kind(),
                format!("working directory {} does not exist", dir.display()),
            ),
            _ => e,
        })?;
        // A pid of 0 would make killpg signal Sockpit's own group.
        let pid = child
            .id()
            .filter(|&p| p > 0)
            .ok_or_else(|| std::io::Error::other("the command exited before it had a pid"))?;
        let readers = child
            .stdout
            .take()
            .map(|out| tokio::spawn(read_lines(out, self.clone(), emit.clone(), output.clone())))
            .into_iter()
            .collect();
        Ok((child, Group { pid }, readers))
    }

    #[cfg(test)]
    pub(crate) fn keep_line_for_test(&self, line: &str) {
        self.keep_line(line);
    }

    fn keep_line(&self, line: &str) {
        let mut tail = self.tail.lock();
        if tail.len() == TAIL_LINES {
            tail.pop_front();
        }
        tail.push_back(line.to_string());
    }
}

fn state_event(reason: String, code: Option<i32>) -> Event {
    let mut e = Event::new(EventKind::UpstreamState);
    e.reason = Some(reason);
    e.code = code.and_then(|c| u16::try_from(c).ok());
    e
}

/// The exit code, or minus the signal that killed it.
fn exit_code(status: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|s| -s))
        .unwrap_or(-1)
}

/// Sleeps `d` unless `stop` comes first; returns whether it did.
async fn wait_or_stop(d: Duration, stop: &CancellationToken) -> bool {
    tokio::select! {
        _ = sleep(d) => false,
        _ = stop.cancelled() => true,
    }
}

/// Whether something accepts connections at the upstream's address.
async fn answers(upstream: &UpstreamUrl) -> bool {
    matches!(
        timeout(
            Duration::from_secs(1),
            tokio::net::TcpStream::connect(upstream.authority())
        )
        .await,
        Ok(Ok(_))
    )
}

async fn wait_until_answers(upstream: &UpstreamUrl) {
    while !answers(upstream).await {
        sleep(READY_POLL).await;
    }
}

/// The command's process group: SIGKILLed when dropped, so the group goes with the
/// server even when the supervising task is dropped instead of cancelled (a runtime
/// ending) — runserver's child must not keep the port.
struct Group {
    pid: u32,
}

impl Group {
    fn id(&self) -> Pid {
        Pid::from_raw(self.pid as i32)
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        let _ = killpg(self.id(), Signal::SIGKILL);
    }
}

/// SIGTERM to the whole group; SIGKILL to what is left after [`TERM_GRACE`].
async fn terminate(child: &mut Child, group: &Group) {
    let group = group.id();
    let _ = killpg(group, Signal::SIGTERM);
    let deadline = Instant::now() + TERM_GRACE;
    let _ = tokio::time::timeout_at(deadline, child.wait()).await;
    // The leader may be gone while its children still shut down: wait for the group.
    while killpg(group, None).is_ok() && Instant::now() < deadline {
        sleep(Duration::from_millis(50)).await;
    }
    let _ = killpg(group, Signal::SIGKILL);
    let _ = child.wait().await;
}

/// Lets the readers take what the pipe still holds (up to a second), then stops them:
/// a daemonised grandchild could keep the pipe open forever.
async fn finish_output(readers: Vec<JoinHandle<()>>, output: &CancellationToken) {
    let _ = timeout(
        Duration::from_secs(1),
        futures_util::future::join_all(readers),
    )
    .await;
    output.cancel();
}

/// Reads `pipe` line by line into events and the tail until EOF or `stop`.
async fn read_lines(
    mut pipe: impl AsyncRead + Unpin,
    process: Arc<Process>,
    emit: impl Fn(Event),
    stop: CancellationToken,
) {
    let mut buf = vec![0u8; 8 << 10];
    let mut line: Vec<u8> = Vec::new();
    let mut cut = false;
    let flush = |line: &mut Vec<u8>, cut: bool| {
        let text = String::from_utf8_lossy(line);
        let text = text.trim_end_matches('\r');
        let text = auth::redact_text(text, &process.token_sources);
        let text = if cut { format!("{text}…") } else { text };
        process.keep_line(&text);
        let mut e = Event::new(EventKind::UpstreamOutput);
        e.reason = Some(text);
        emit(e);
        line.clear();
    };
    loop {
        let n = tokio::select! {
            r = pipe.read(&mut buf) => match r {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            },
            _ = stop.cancelled() => break,
        };
        for &b in &buf[..n] {
            if b == b'\n' {
                if !cut {
                    flush(&mut line, false);
                }
                cut = false;
            } else if cut {
                // The rest of an over-long line is dropped.
            } else if line.len() < MAX_LINE {
                line.push(b);
            } else {
                flush(&mut line, true);
                cut = true;
            }
        }
    }
    if !line.is_empty() {
        flush(&mut line, false);
    }
}
