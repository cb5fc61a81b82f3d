//! Apertium rule-based MT backend: one long-lived Apertium pipeline per instance (one
//! per worker thread), fed batches in null-flush mode.
//!
//! # Why not `apertium -z MODE`
//!
//! Apertium 3.8's driver script reads its input through gawk with `RS="\0|\n"`; gawk holds
//! a record until it sees more input and block-buffers its output, so a batch written
//! with `-z` is answered only when the next batch arrives (or at EOF). For the real
//! driver this backend therefore runs the mode's own pipeline, as printed by
//! `apertium-wblank-mode -z`, under `sh` (like apertium-apy does). Any other `command`
//! is run as `COMMAND -z -u MODE` and must answer each NUL-terminated segment with one.
//!
//! # One segment per caption
//!
//! Lines of one segment influence each other: the HMM tagger's context and the transfer
//! rules' chunks run across newlines (172 of 2,000 COCO captions came out differently in
//! a newline-separated block than alone). So every caption is its own NUL-terminated
//! segment, which every stage treats as a hard boundary. A call streams all its segments
//! (written ahead of the answers, so the pipeline never drains), but every stage flushes
//! and wakes once per caption: a round trip takes about 20% more CPU than through
//! `apertium -u` in steady state, the price of exact batch independence. Each segment is
//! `[k]` + escaped text + `\n\0`: `[k]`, the index in the call, is a superblank that
//! Apertium passes through untouched; it must come back at the start of answer k, which
//! catches any lost or extra segment. The newline matters: `lt-proc -b` holds a segment
//! whose last word is followed directly by NUL.
//!
//! # Tagger priming
//!
//! The HMM tagger also carries state from one segment to the next: when a word's
//! ambiguity class was never seen in training, `find_similar_ambiguity_class`
//! (apertium/tagger_utils.cc) overwrites the tagger's open class, which is what unknown
//! words and later unseen classes are tagged with, for the rest of the process. In a
//! stream of COCO captions 8 of 2,000 changed with their position in the stream
//! (eng-spa, after the first "a lot of"). So each process first translates a primer
//! whose unseen class moves the open class to a 3-tag class; no later word can change a
//! class that small (it would need a smaller known class containing an unseen one of at
//! least 2 tags), so every caption sees the same tagger. Checked by translating 3,000
//! COCO captions forwards and backwards: eng-spa and cat-eng differ without their
//! primer and never with it; spa-eng (no unseen class in 25,000 Spanish round-trip
//! captions moved its open class) and eng-cat (perceptron tagger) need none.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use super::Translator;
use crate::core::error::{Error, Result};

/// Settings of the `apertium` backend (`[stages.backtranslate.apertium]`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApertiumOptions {
    /// The Apertium driver (`apertium`, looked up in `PATH`), or any program that, run as
    /// `COMMAND -z -u MODE`, answers each NUL-terminated segment with one.
    pub command: String,
    /// Captions per write to the subprocess.
    pub batch_size: usize,
    /// Seconds without an answer before the subprocess counts as hung.
    pub timeout_secs: f64,
    /// Restarts of a crashed or hung subprocess in a row, without an answer in between,
    /// before giving up.
    pub retries: u32,
}

impl Default for ApertiumOptions {
    fn default() -> Self {
        ApertiumOptions {
            command: "apertium".into(),
            batch_size: 64,
            timeout_secs: 30.0,
            retries: 2,
        }
    }
}

/// Primers by the tagger model a pipeline loads (see the module docs).
const PRIMERS: &[(&str, &str)] = &[
    ("/eng-spa.prob'", "a lot of"),
    ("/cat-eng.prob'", "titular"),
];

/// Bytes of the subprocess's stderr kept for error messages.
const STDERR_TAIL: usize = 2048;

/// How to start the subprocess.
#[derive(Debug, Clone)]
enum Launch {
    /// The mode's pipeline script, run by `sh` with Apertium's tools first in `PATH`.
    Pipeline {
        script: String,
        bin_dir: Option<PathBuf>,
        primer: Option<&'static str>,
    },
    /// Any other program, run as `PROGRAM -z -u MODE`.
    Program(PathBuf),
}

/// One translation direction backed by a long-lived Apertium subprocess.
pub struct Apertium {
    id: String,
    mode: String,
    launch: Launch,
    batch_size: usize,
    timeout: Duration,
    retries: u32,
    process: Option<Process>,
    restarts: u64,
}

impl std::fmt::Debug for Apertium {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Apertium")
            .field("id", &self.id)
            .field("restarts", &self.restarts)
            .finish_non_exhaustive()
    }
}

impl Apertium {
    /// Starts `apertium` for `mode` (e.g. `eng-spa`); fails when the mode is not installed
    /// or the subprocess does not come up.
    pub fn spawn(mode: &str, options: &ApertiumOptions) -> Result<Apertium> {
        let id = format!("apertium/{mode}");
        if mode.is_empty()
            || !mode
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(Error::translate(id, format!("invalid mode name {mode:?}")));
        }
        let timeout = Duration::try_from_secs_f64(options.timeout_secs)
            .ok()
            .filter(|t| !t.is_zero())
            .ok_or_else(|| {
                Error::translate(
                    &id,
                    format!(
                        "timeout_secs must be positive, not {}",
                        options.timeout_secs
                    ),
                )
            })?;
        let launch =
            Launch::resolve(&options.command, mode).map_err(|m| Error::translate(&id, m))?;
        let mut this = Apertium {
            id,
            mode: mode.to_string(),
            launch,
            batch_size: options.batch_size.max(1),
            timeout,
            retries: options.retries,
            process: None,
            restarts: 0,
        };
        if let Err(failure) = this.start() {
            let message = this.describe(&failure);
            return Err(Error::translate(this.id.clone(), message));
        }
        Ok(this)
    }

    /// How many times the subprocess was restarted after a crash, hang or misalignment.
    pub fn restarts(&self) -> u64 {
        self.restarts
    }

    /// Starts the subprocess and primes it.
    fn start(&mut self) -> std::result::Result<(), Failure> {
        self.stop();
        let mut command = match &self.launch {
            Launch::Pipeline {
                script, bin_dir, ..
            } => {
                let mut command = Command::new("sh");
                // $1 is the generator's flag (-n: no unknown-word marks, as `apertium -u`),
                // $2 the tagger's (none).
                command.arg("-c").arg(script).args(["sh", "-n", ""]);
                if let Some(dir) = bin_dir {
                    let mut path = OsString::from(dir);
                    if let Some(rest) = std::env::var_os("PATH") {
                        path.push(":");
                        path.push(rest);
                    }
                    command.env("PATH", path);
                }
                if !utf8_locale() {
                    command.env("LC_ALL", "C.UTF-8");
                }
                command
            }
            Launch::Program(program) => {
                let mut command = Command::new(program);
                command.args(["-z", "-u", &self.mode]);
                command
            }
        };
        self.process = Some(Process::start(&mut command)?);
        if let Launch::Pipeline {
            primer: Some(primer),
            ..
        } = self.launch
        {
            self.stream(&[primer], &mut Vec::new())?;
        }
        Ok(())
    }

    /// Kills the subprocess, if any.
    fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill();
        }
    }

    /// Streams `items` through the running subprocess, every item its own segment, and
    /// appends each answer to `out` as it arrives. All batches are written ahead of the
    /// answers (the writer thread absorbs the back-pressure), so the pipeline never
    /// drains between batches, as in a shell pipe.
    fn stream(
        &mut self,
        items: &[&str],
        out: &mut Vec<String>,
    ) -> std::result::Result<(), Failure> {
        let process = self.process.as_mut().ok_or(Failure::Exited(None))?;
        let input = process.input.as_ref().ok_or(Failure::Exited(None))?;
        for (b, batch) in items.chunks(self.batch_size).enumerate() {
            let mut payload = Vec::with_capacity(batch.iter().map(|t| t.len() + 16).sum());
            for (k, text) in batch.iter().enumerate() {
                payload.extend_from_slice(format!("[{}]", b * self.batch_size + k).as_bytes());
                escape_into(text, &mut payload);
                payload.extend_from_slice(b"\n\0");
            }
            if input.send(payload).is_err() {
                return Err(Failure::Exited(None));
            }
        }
        for (k, text) in items.iter().enumerate() {
            let segment = match process.output.recv_timeout(self.timeout) {
                Ok(Event::Segment(segment)) => segment,
                Ok(Event::Closed(error)) => return Err(Failure::Exited(error)),
                Err(RecvTimeoutError::Disconnected) => return Err(Failure::Exited(None)),
                Err(RecvTimeoutError::Timeout) => return Err(Failure::Hung),
            };
            let segment = String::from_utf8_lossy(&segment);
            let marker = format!("[{k}]");
            match segment.trim_start().strip_prefix(&marker) {
                Some(body) => out.push(reformat(body, text)),
                None => {
                    let shown: String = segment.chars().take(80).collect();
                    return Err(Failure::Misaligned(format!(
                        "answer {k} does not start with {marker}: {shown:?}"
                    )));
                }
            }
        }
        Ok(())
    }

    /// Streams `items` with restarts: a crash or hang restarts the subprocess and resends
    /// what was not answered; after a misaligned answer the next item goes alone, so a
    /// bad item cannot take its neighbours down with it. Gives up after `retries`
    /// failures in a row without an answer.
    fn stream_with_retries(&mut self, items: &[&str]) -> Result<Vec<String>> {
        let mut out = Vec::with_capacity(items.len());
        let (mut failures, mut alone) = (0u32, false);
        while out.len() < items.len() {
            let answered = out.len();
            let rest = match alone {
                true => &items[answered..answered + 1],
                false => &items[answered..],
            };
            let attempt = match self.process {
                Some(_) => self.stream(rest, &mut out),
                None => {
                    self.restarts += 1;
                    self.start().and_then(|()| self.stream(rest, &mut out))
                }
            };
            if out.len() > answered {
                failures = 0;
                alone = false;
            }
            let Err(failure) = attempt else { continue };
            let message = self.describe(&failure);
            self.stop();
            alone = matches!(failure, Failure::Misaligned(_));
            failures += 1;
            if failures > self.retries {
                let retries = self.retries;
                return Err(Error::translate(
                    &self.id,
                    format!("{message}; gave up after {retries} restart(s)"),
                ));
            }
        }
        Ok(out)
    }

    /// What went wrong, for error messages (before the process is stopped).
    fn describe(&mut self, failure: &Failure) -> String {
        let mode = &self.mode;
        let (status, stderr) = match self.process.as_mut() {
            Some(process) if matches!(failure, Failure::Exited(_)) => {
                (process.exit_status(), process.stderr_tail())
            }
            Some(process) => (None, process.stderr_tail()),
            None => (None, String::new()),
        };
        let mut message = match failure {
            Failure::Start(error) => format!("cannot start Apertium for mode {mode}: {error}"),
            Failure::Exited(error) => {
                let how = match (status, error) {
                    (Some(status), _) => format!("exited ({status})"),
                    (None, Some(error)) => format!("failed ({error})"),
                    (None, None) => "closed its output".to_string(),
                };
                format!("Apertium for mode {mode} {how}")
            }
            Failure::Hung => format!(
                "Apertium for mode {mode} gave no answer within {} s (hung)",
                self.timeout.as_secs_f64()
            ),
            Failure::Misaligned(what) => {
                format!("Apertium for mode {mode} answered out of step: {what}")
            }
        };
        if !stderr.is_empty() {
            message.push_str(&format!("; its stderr ends: {stderr}"));
        }
        message
    }
}

impl Translator for Apertium {
    fn id(&self) -> &str {
        &self.id
    }

    fn translate(&mut self, texts: &[&str]) -> Result<Vec<String>> {
        let mut out = vec![String::new(); texts.len()];
        let todo: Vec<(usize, &str)> = texts
            .iter()
            .enumerate()
            .filter(|(_, t)| !t.chars().all(|c| c.is_whitespace() || c.is_control()))
            .map(|(i, t)| (i, t.trim()))
            .collect();
        let items: Vec<&str> = todo.iter().map(|&(_, t)| t).collect();
        for ((i, _), text) in todo.into_iter().zip(self.stream_with_retries(&items)?) {
            out[i] = text;
        }
        Ok(out)
    }
}

impl Drop for Apertium {
    fn drop(&mut self) {
        self.stop();
    }
}

/// True when `command` can translate with `mode` (for the `auto` backend choice): starts
/// it and translates one word, so it takes about half a second.
/// The English -> pivot and pivot -> English modes for `pivot`, when both work. Apertium
/// names pairs by three-letter codes ("eng-spa") or, in older packages, two ("en-eo").
pub fn modes(command: &str, pivot: &str) -> Option<(String, String)> {
    [("eng", pivot), ("en", pivot)]
        .iter()
        .find_map(|(english, pivot)| {
            let (to, from) = (format!("{english}-{pivot}"), format!("{pivot}-{english}"));
            (available(command, &to) && available(command, &from)).then_some((to, from))
        })
}

pub fn available(command: &str, mode: &str) -> bool {
    let options = ApertiumOptions {
        command: command.to_string(),
        batch_size: 1,
        timeout_secs: 15.0,
        retries: 0,
    };
    match Apertium::spawn(mode, &options) {
        Ok(mut apertium) => {
            matches!(apertium.translate(&["hello"]), Ok(out) if out.len() == 1 && !out[0].is_empty())
        }
        Err(_) => false,
    }
}

impl Launch {
    fn resolve(command: &str, mode: &str) -> std::result::Result<Launch, String> {
        let program =
            find_program(command).ok_or_else(|| format!("command {command:?} not found"))?;
        let Some(driver) = read_driver(&program) else {
            return Ok(Launch::Program(program));
        };
        // Like the driver: its environment variables win over its defaults.
        let setting = |name: &str| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
                .or_else(|| driver_default(&driver, name).map(PathBuf::from))
        };
        let data_dir =
            setting("APERTIUM_DATADIR").unwrap_or_else(|| PathBuf::from("/usr/share/apertium"));
        let bin_dir = setting("APERTIUM_PATH").or_else(|| program.parent().map(Path::to_path_buf));
        let mode_file = data_dir.join("modes").join(format!("{mode}.mode"));
        if !mode_file.is_file() {
            return Err(format!(
                "mode {mode} is not installed (no {}; `{command} -l` lists the installed modes)",
                mode_file.display()
            ));
        }
        let wblank = bin_dir
            .as_ref()
            .map(|d| d.join("apertium-wblank-mode"))
            .filter(|p| p.is_file())
            .or_else(|| find_program("apertium-wblank-mode"));
        let Some(wblank) = wblank else {
            // Older Apertium without the tool: hope its driver streams.
            return Ok(Launch::Program(program));
        };
        let output = Command::new(&wblank)
            .arg("-z")
            .arg(&mode_file)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run {}: {e}", wblank.display()))?;
        let script = String::from_utf8(output.stdout).unwrap_or_default();
        if !output.status.success() || script.trim().is_empty() {
            return Err(format!(
                "{} -z {} failed ({}): {}",
                wblank.display(),
                mode_file.display(),
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
        // The word-bound blank stages only move `[[...]]` blanks, which escaped input
        // never has; dropping them saves two processes' per-segment wake-ups.
        let script = script
            .split('|')
            .filter(|stage| {
                !matches!(
                    stage.trim(),
                    "apertium-wblank-attach" | "apertium-wblank-detach"
                )
            })
            .collect::<Vec<_>>()
            .join("|");
        let primer = PRIMERS
            .iter()
            .find(|(model, _)| script.contains(model))
            .map(|&(_, p)| p);
        Ok(Launch::Pipeline {
            script,
            bin_dir,
            primer,
        })
    }
}

/// `command` as a path, or looked up in `PATH` when it names no folder.
fn find_program(command: &str) -> Option<PathBuf> {
    if command.is_empty() {
        return None;
    }
    if command.contains('/') {
        let path = PathBuf::from(command);
        return path.is_file().then_some(path);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(command))
        .find(|p| p.is_file())
}

/// The text of Apertium's driver script, or `None` when `program` is something else.
fn read_driver(program: &Path) -> Option<String> {
    let mut head = Vec::new();
    std::fs::File::open(program)
        .ok()?
        .take(256 * 1024)
        .read_to_end(&mut head)
        .ok()?;
    let text = String::from_utf8(head).ok()?;
    (text.starts_with("#!") && text.contains("APERTIUM_DATADIR")).then_some(text)
}

/// The default a driver script gives `NAME` in `NAME="${NAME:-default}"`.
fn driver_default(driver: &str, name: &str) -> Option<String> {
    let start = driver.find(&format!("{name}:-"))? + name.len() + 2;
    let value = &driver[start..start + driver[start..].find('}')?];
    let value = value.trim_matches(|c| c == '"' || c == '\'');
    (!value.is_empty()).then(|| value.to_string())
}

/// Whether this process's locale is UTF-8 (Apertium's tools need one).
fn utf8_locale() -> bool {
    ["LC_ALL", "LC_CTYPE", "LANG"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|v| !v.is_empty()))
        .is_some_and(|v| {
            let v = v.to_ascii_lowercase();
            v.contains("utf-8") || v.contains("utf8")
        })
}

/// Writes `text` in Apertium's stream format, as `apertium-destxt` does: reserved
/// characters escaped, `~` (a post-generation marker) in a superblank, control characters
/// (newlines, tabs, NULs) as spaces.
fn escape_into(text: &str, out: &mut Vec<u8>) {
    let mut buf = [0u8; 4];
    for c in text.chars() {
        match c {
            '\\' | '[' | ']' | '^' | '$' | '/' | '<' | '>' | '@' | '{' | '}' => {
                out.push(b'\\');
                out.push(c as u8);
            }
            '~' => out.extend_from_slice(b"[~]"),
            c if c.is_control() => out.push(b' '),
            c => out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes()),
        }
    }
}

/// Plain text from one answer: escapes and superblanks undone, Apertium's marks (`*`
/// unknown word, `#` generation error, `@` transfer error) dropped from word starts, and
/// whitespace collapsed. `*` and `#` also pass through unescaped from the input, so they
/// are kept when the input had them; a literal `@` always comes back escaped.
fn reformat(answer: &str, input: &str) -> String {
    let keep_star = input.contains('*');
    let keep_hash = input.contains('#');
    let mut out = String::with_capacity(answer.len());
    let mut chars = answer.chars().peekable();
    let at_word_start = |out: &String| !out.chars().next_back().is_some_and(char::is_alphanumeric);
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.extend(chars.next()),
            '[' if chars.peek() == Some(&'[') => {
                // A word-bound blank `[[...]]` holds formatting only.
                let mut previous = '[';
                for c in chars.by_ref() {
                    if c == ']' && previous == ']' {
                        break;
                    }
                    previous = c;
                }
            }
            '[' => {
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => out.extend(chars.next()),
                        ']' => break,
                        c => out.push(c),
                    }
                }
            }
            '*' if !keep_star && at_word_start(&out) => {}
            '#' if !keep_hash && at_word_start(&out) => {}
            '@' if at_word_start(&out) => {}
            c => out.push(c),
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Why a request failed.
#[derive(Debug)]
enum Failure {
    /// The subprocess could not be started.
    Start(String),
    /// The subprocess closed its output (crashed or exited); a read error if any.
    Exited(Option<String>),
    /// No answer within the timeout.
    Hung,
    /// An answer did not carry its marker.
    Misaligned(String),
}

/// What the reader thread reports.
enum Event {
    /// One NUL-terminated answer, without the NUL.
    Segment(Vec<u8>),
    /// End of output, with the read error if there was one.
    Closed(Option<String>),
}

/// A running subprocess with a writer thread (so a request larger than the pipe buffer
/// cannot deadlock against unread output), a reader thread (so a hang is caught by
/// `recv_timeout`) and a thread keeping the tail of its stderr.
struct Process {
    child: Child,
    input: Option<Sender<Vec<u8>>>,
    output: Receiver<Event>,
    stderr: Arc<Mutex<VecDeque<u8>>>,
    stderr_reader: Option<thread::JoinHandle<()>>,
    reaped: bool,
}

impl Process {
    fn start(command: &mut Command) -> std::result::Result<Process, Failure> {
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // Its own process group, so that killing it takes the whole pipeline.
        #[cfg(unix)]
        std::os::unix::process::CommandExt::process_group(command, 0);
        let program = command.get_program().to_string_lossy().into_owned();
        let mut child = command
            .spawn()
            .map_err(|e| Failure::Start(format!("{program}: {e}")))?;
        let (Some(mut stdin), Some(stdout), Some(mut stderr_pipe)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(Failure::Start("no pipes to the subprocess".into()));
        };
        let (input, requests) = mpsc::channel::<Vec<u8>>();
        let (events, output) = mpsc::channel();
        // From here on, dropping `process` on an error kills the child.
        let mut process = Process {
            child,
            input: Some(input),
            output,
            stderr: Arc::new(Mutex::new(VecDeque::new())),
            stderr_reader: None,
            reaped: false,
        };
        let spawn_error = |e: std::io::Error| Failure::Start(format!("cannot start a thread: {e}"));

        thread::Builder::new()
            .name("apertium-writer".into())
            .spawn(move || {
                for payload in requests {
                    if stdin
                        .write_all(&payload)
                        .and_then(|()| stdin.flush())
                        .is_err()
                    {
                        break;
                    }
                }
            })
            .map_err(spawn_error)?;

        thread::Builder::new()
            .name("apertium-reader".into())
            .spawn(move || {
                let mut reader = BufReader::with_capacity(64 * 1024, stdout);
                loop {
                    let mut segment = Vec::new();
                    let event = match reader.read_until(0, &mut segment) {
                        Ok(_) if segment.last() == Some(&0) => {
                            segment.pop();
                            Event::Segment(segment)
                        }
                        Ok(_) => Event::Closed(None),
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                        Err(e) => Event::Closed(Some(e.to_string())),
                    };
                    let closed = matches!(event, Event::Closed(_));
                    if events.send(event).is_err() || closed {
                        break;
                    }
                }
            })
            .map_err(spawn_error)?;

        let tail = Arc::clone(&process.stderr);
        let stderr_reader = thread::Builder::new()
            .name("apertium-stderr".into())
            .spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n @ 1..) = stderr_pipe.read(&mut buf) {
                    if let Ok(mut tail) = tail.lock() {
                        tail.extend(&buf[..n]);
                        let excess = tail.len().saturating_sub(STDERR_TAIL);
                        tail.drain(..excess);
                    }
                }
            })
            .map_err(spawn_error)?;
        process.stderr_reader = Some(stderr_reader);
        Ok(process)
    }

    /// The exit status, waiting briefly for a process whose output just closed (and
    /// then for the rest of its stderr).
    fn exit_status(&mut self) -> Option<std::process::ExitStatus> {
        for _ in 0..20 {
            match self.child.try_wait() {
                Ok(Some(status)) => {
                    for _ in 0..20 {
                        if self.stderr_reader.as_ref().is_none_or(|r| r.is_finished()) {
                            break;
                        }
                        thread::sleep(Duration::from_millis(10));
                    }
                    return Some(status);
                }
                Ok(None) => thread::sleep(Duration::from_millis(10)),
                Err(_) => return None,
            }
        }
        None
    }

    /// The last lines of stderr on one line.
    fn stderr_tail(&self) -> String {
        let Ok(tail) = self.stderr.lock() else {
            return String::new();
        };
        let bytes: Vec<u8> = tail.iter().copied().collect();
        let text = String::from_utf8_lossy(&bytes);
        let lines: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        lines[lines.len().saturating_sub(3)..].join(" | ")
    }

    /// Kills the whole process group and reaps the child.
    fn kill(&mut self) {
        if self.reaped {
            return;
        }
        self.input = None;
        #[cfg(unix)]
        {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", self.child.id())])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.reaped = true;
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use std::os::unix::fs::PermissionsExt;
    use std::sync::OnceLock;
    use std::time::Instant;

    /// Whether the real Apertium (eng-spa) is here; fails instead of skipping when
    /// CMCL_REQUIRE_APERTIUM=1.
    fn have_apertium(test: &str) -> bool {
        static AVAILABLE: OnceLock<bool> = OnceLock::new();
        let available = *AVAILABLE.get_or_init(|| available("apertium", "eng-spa"));
        if !available {
            assert!(
                std::env::var("CMCL_REQUIRE_APERTIUM").as_deref() != Ok("1"),
                "{test}: Apertium eng-spa is not installed but CMCL_REQUIRE_APERTIUM=1 (run `make apt-deps`)"
            );
            eprintln!("SKIPPED {test}: Apertium eng-spa is not installed (run `make apt-deps`)");
        }
        available
    }

    fn options() -> ApertiumOptions {
        ApertiumOptions::default()
    }

    /// About 200 distinct caption-like sentences, with and without final periods, some
    /// with two sentences, and words that exercise the tagger priming ("near", "a lot
    /// of", unknown words).
    fn captions() -> Vec<String> {
        let subjects = [
            "A man",
            "A woman",
            "Two dogs",
            "A small child",
            "A brown horse",
            "A group of people",
            "An old bus",
            "A cat",
            "A lot of birds",
            "A young girl",
            "The baker",
            "A red truck",
            "A skier",
        ];
        let verbs = [
            "is riding",
            "is standing near",
            "sits on",
            "is looking at",
            "walks along",
            "is holding",
            "plays with",
            "is parked near",
            "jumps over",
            "is eating",
        ];
        let objects = [
            "a horse on the beach",
            "the kitchen counter",
            "a wooden bench",
            "a busy street",
            "a large pizza",
            "the snowy slope",
            "a frisbee in the park",
            "some dough",
            "a tall building",
            "the ocean waves",
            "a pile of zorbles",
        ];
        let mut out = Vec::new();
        let mut i = 0usize;
        while out.len() < 200 {
            let s = subjects[i % subjects.len()];
            let v = verbs[(i / 3) % verbs.len()];
            let o = objects[(i * 7) % objects.len()];
            let text = match i % 4 {
                0 => format!("{s} {v} {o}."),
                1 => format!("{s} {v} {o}"),
                2 => format!("{s} {v} {o}. It is brown."),
                _ => format!("{} {v} {o}", s.to_lowercase()),
            };
            if !out.contains(&text) {
                out.push(text);
            }
            i += 1;
        }
        out
    }

    #[test]
    fn escaping_and_marks() {
        let mut buf = Vec::new();
        escape_into("a [b] \\c ^d$ e/f <g> @h {i} x~y\tz\nw\0v", &mut buf);
        assert_eq!(
            String::from_utf8(buf).unwrap(),
            "a \\[b\\] \\\\c \\^d\\$ e\\/f \\<g\\> \\@h \\{i\\} x[~]y z w v"
        );
        assert_eq!(
            reformat("Un \\[b\\] [~]c \\@d  *perro #andar @ir\n", "x"),
            "Un [b] ~c @d perro andar ir"
        );
        assert_eq!(reformat("el #1 fan *es", "the #1 fan *is"), "el #1 fan *es");
        assert_eq!(reformat("x[[t:b:1]]y[ ~]z", "x"), "xy ~z");
        assert_eq!(reformat("e-mail a@b", "x"), "e-mail a@b");
    }

    #[test]
    fn alignment_and_batch_independence() {
        if !have_apertium("alignment_and_batch_independence") {
            return;
        }
        let captions = captions();
        let long: Vec<String> = (0..20)
            .map(|k| {
                let mut s = String::new();
                let mut j = k;
                while s.len() < 2000 + 50 * k {
                    s.push_str(&captions[j % captions.len()]);
                    s.push(' ');
                    j += 7;
                }
                s
            })
            .collect();
        let specials = ["", " ", "  \t ", "\n", "...", "!?", "-", "\u{0}", "\t\r\n"];
        let mut inputs: Vec<String> = Vec::new();
        for i in 0..10_000usize {
            inputs.push(match i % 10 {
                0..=3 => captions[(i * 31) % captions.len()].clone(),
                4..=6 => specials[i % specials.len()].to_string(),
                7 => ["...", "!?", "A dog.", "near"][i % 4].to_string(),
                8 if i % 500 == 8 => long[(i / 500) % long.len()].clone(),
                _ => format!("{}\n{}", captions[i % captions.len()], "with a tab\there"),
            });
        }
        let refs: Vec<&str> = inputs.iter().map(String::as_str).collect();
        let mut apertium = Apertium::spawn("eng-spa", &options()).unwrap();
        let out = apertium.translate(&refs).unwrap();
        assert_eq!(out.len(), inputs.len());
        for (input, output) in inputs.iter().zip(&out) {
            let blank = input.chars().all(|c| c.is_whitespace() || c.is_control());
            assert_eq!(blank, output.is_empty(), "{input:?} -> {output:?}");
            assert!(!output.contains(['\n', '\0', '\t']), "{output:?}");
        }
        for (input, output) in inputs.iter().zip(&out).filter(|(i, _)| long.contains(i)) {
            assert!(
                output.len() > input.len() / 2,
                "a long line came back short: {output:?}"
            );
        }
        // Each caption alone (a fresh instance, one request each) gives what it gave in
        // the 10,000-line stream.
        let mut alone = Apertium::spawn("eng-spa", &options()).unwrap();
        let sample: BTreeSet<&str> = inputs
            .iter()
            .filter(|i| captions.contains(i))
            .map(String::as_str)
            .collect();
        for caption in sample.iter().step_by(2).take(100) {
            let single = alone.translate(&[caption]).unwrap();
            let position = inputs.iter().position(|i| i == caption).unwrap();
            assert_eq!(
                single[0], out[position],
                "{caption:?} alone vs in the stream"
            );
        }
        // Internal newlines and tabs are spaces.
        let (i, joined) = inputs
            .iter()
            .enumerate()
            .find(|(_, i)| i.contains('\n') && i.len() > 20)
            .unwrap();
        let flat = joined.split_whitespace().collect::<Vec<_>>().join(" ");
        assert_eq!(alone.translate(&[&flat]).unwrap()[0], out[i]);
        assert_eq!(apertium.restarts(), 0);
    }

    #[test]
    fn order_and_batch_size_do_not_matter() {
        if !have_apertium("order_and_batch_size_do_not_matter") {
            return;
        }
        let captions = captions();
        let refs: Vec<&str> = captions.iter().map(String::as_str).collect();
        let mut forward = Apertium::spawn("eng-spa", &options()).unwrap();
        let a = forward.translate(&refs).unwrap();
        let reversed: Vec<&str> = refs.iter().rev().copied().collect();
        let small = ApertiumOptions {
            batch_size: 7,
            ..options()
        };
        let mut backward = Apertium::spawn("eng-spa", &small).unwrap();
        let mut b = backward.translate(&reversed).unwrap();
        b.reverse();
        for ((caption, a), b) in refs.iter().zip(&a).zip(&b) {
            assert_eq!(a, b, "{caption:?} forwards vs backwards");
        }
    }

    #[test]
    fn round_trip() {
        if !have_apertium("round_trip") {
            return;
        }
        let mut there = Apertium::spawn("eng-spa", &options()).unwrap();
        let mut back = Apertium::spawn("spa-eng", &options()).unwrap();
        assert_eq!(there.id(), "apertium/eng-spa");
        let spanish = there
            .translate(&["a man is riding a horse on the beach", "  "])
            .unwrap();
        assert!(spanish[0].contains("caballo"), "{spanish:?}");
        assert_eq!(spanish[1], "");
        let english = back.translate(&[&spanish[0]]).unwrap();
        assert!(english[0].to_lowercase().contains("horse"), "{english:?}");
    }

    #[test]
    fn unknown_mode_and_command() {
        let err = Apertium::spawn("eng-xyz", &options())
            .unwrap_err()
            .to_string();
        assert!(err.contains("eng-xyz"), "{err}");
        let missing = ApertiumOptions {
            command: "/nonexistent/apertium".into(),
            ..options()
        };
        assert!(Apertium::spawn("eng-spa", &missing).is_err());
        assert!(!available("/nonexistent/apertium", "eng-spa"));
        assert!(Apertium::spawn("../x", &options()).is_err());
        let bad_timeout = ApertiumOptions {
            timeout_secs: -1.0,
            ..options()
        };
        assert!(Apertium::spawn("eng-spa", &bad_timeout).is_err());
    }

    #[test]
    fn recovers_from_a_killed_process() {
        if !have_apertium("recovers_from_a_killed_process") {
            return;
        }
        let captions = captions();
        let refs: Vec<&str> = captions.iter().map(String::as_str).collect();
        let expected = Apertium::spawn("eng-spa", &options())
            .unwrap()
            .translate(&refs)
            .unwrap();
        let mut apertium = Apertium::spawn("eng-spa", &options()).unwrap();
        assert_eq!(apertium.translate(&refs[..10]).unwrap(), expected[..10]);
        let kill = |apertium: &Apertium| {
            let pid = apertium.process.as_ref().unwrap().child.id();
            let status = Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .status()
                .unwrap();
            assert!(status.success());
        };
        // Killed between requests.
        kill(&apertium);
        assert_eq!(apertium.translate(&refs).unwrap(), expected);
        assert_eq!(apertium.restarts(), 1);
        // Killed in the middle of a request.
        let pid = apertium.process.as_ref().unwrap().child.id();
        let killer = thread::spawn(move || {
            thread::sleep(Duration::from_millis(150));
            Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .status()
                .unwrap();
        });
        let many: Vec<&str> = refs.iter().cycle().take(1000).copied().collect();
        let out = apertium.translate(&many).unwrap();
        killer.join().unwrap();
        for ((caption, a), b) in many.iter().zip(&out).zip(expected.iter().cycle()) {
            assert_eq!(a, b, "{caption:?} after a restart");
        }
        assert_eq!(apertium.restarts(), 2);
    }

    /// Writes an executable fake `apertium` that runs `body` (bash).
    fn fake(dir: &Path, name: &str, body: &str) -> String {
        let path = dir.join(name);
        std::fs::write(&path, format!("#!/bin/bash\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path.to_string_lossy().into_owned()
    }

    /// `Apertium::spawn`, retried while another test's fork still holds the fresh
    /// script open for writing (ETXTBSY).
    fn spawn_fake(options: &ApertiumOptions) -> Result<Apertium> {
        for _ in 0..50 {
            match Apertium::spawn("eng-spa", options) {
                Err(e) if e.to_string().contains("Text file busy") => {
                    thread::sleep(Duration::from_millis(20))
                }
                other => return other,
            }
        }
        Apertium::spawn("eng-spa", options)
    }

    #[test]
    fn hung_process_is_restarted() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("hung-once");
        // The first process reads its request and never answers; later ones echo.
        let body = format!(
            "[ \"$*\" = '-z -u eng-spa' ] || exit 2\nif [ ! -e '{0}' ]; then touch '{0}'; exec sleep 600; fi\nexec cat",
            marker.display()
        );
        let options = ApertiumOptions {
            command: fake(dir.path(), "hang-once", &body),
            timeout_secs: 1.0,
            retries: 2,
            batch_size: 3,
        };
        let started = Instant::now();
        let mut apertium = spawn_fake(&options).unwrap();
        let out = apertium
            .translate(&["a dog", "", "a [cat] @ home", "x\ny"])
            .unwrap();
        assert_eq!(out, ["a dog", "", "a [cat] @ home", "x y"]);
        assert_eq!(apertium.restarts(), 1);
        assert!(started.elapsed() < Duration::from_secs(5));

        // Always hung: a clean error after the retries.
        let options = ApertiumOptions {
            command: fake(dir.path(), "hang-always", "exec sleep 600"),
            timeout_secs: 0.5,
            retries: 1,
            batch_size: 64,
        };
        let started = Instant::now();
        let mut apertium = spawn_fake(&options).unwrap();
        let err = apertium.translate(&["a dog"]).unwrap_err().to_string();
        assert!(
            err.contains("eng-spa") && err.contains("hung") && err.contains("1 restart"),
            "{err}"
        );
        assert_eq!(apertium.restarts(), 1);
        assert!(started.elapsed() < Duration::from_secs(4));
    }

    #[test]
    fn crashing_process_is_restarted_or_reported() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("crashed-once");
        // Echoes segments; exits on "CRASH" (only the first time when `once`).
        let echo = |once: bool| {
            format!(
                "while IFS= read -r -d '' seg; do\n  if [[ $seg == *CRASH* ]] {}; then {} echo dying >&2; exit 3; fi\n  printf '%s\\0' \"$seg\"\ndone",
                if once { format!("&& [ ! -e '{}' ]", marker.display()) } else { String::new() },
                if once { format!("touch '{}';", marker.display()) } else { String::new() },
            )
        };
        let options = ApertiumOptions {
            command: fake(dir.path(), "crash-once", &echo(true)),
            timeout_secs: 5.0,
            retries: 2,
            batch_size: 2,
        };
        let mut apertium = spawn_fake(&options).unwrap();
        let out = apertium
            .translate(&["one", "two", "CRASH three", "four"])
            .unwrap();
        assert_eq!(out, ["one", "two", "CRASH three", "four"]);
        assert_eq!(apertium.restarts(), 1);

        let options = ApertiumOptions {
            command: fake(dir.path(), "crash-always", &echo(false)),
            ..options
        };
        let mut apertium = spawn_fake(&options).unwrap();
        let err = apertium
            .translate(&["one", "CRASH"])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("eng-spa")
                && err.contains("exited")
                && err.contains("dying")
                && err.contains("2 restart"),
            "{err}"
        );
        assert_eq!(apertium.restarts(), 2);
    }

    #[test]
    fn misaligned_answers_fall_back_to_one_line_requests() {
        let dir = tempfile::tempdir().unwrap();
        // Answers a segment holding "SPLIT" with two segments: the extra answer trips the
        // next item's marker check, which restarts the subprocess and resends that item
        // alone, then the rest; answers before it are kept.
        let body = "while IFS= read -r -d '' seg; do\n  if [[ $seg == *SPLIT* ]]; then printf '%s\\0%s\\0' \"$seg\" extra; else printf '%s\\0' \"$seg\"; fi\ndone";
        let options = ApertiumOptions {
            command: fake(dir.path(), "split", body),
            timeout_secs: 5.0,
            retries: 1,
            batch_size: 64,
        };
        let mut apertium = spawn_fake(&options).unwrap();
        let out = apertium
            .translate(&["one", "SPLIT two", "three", "four"])
            .unwrap();
        assert_eq!(out, ["one", "SPLIT two", "three", "four"]);
        assert_eq!(apertium.restarts(), 1);
    }
}
