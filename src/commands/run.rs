//! `credfile run --env ENV -- CMD [ARGS...]` (docs/src/run.md): the stages of apply up to
//! render, then the files in a private tmpfs at the environment's root that only CMD and its
//! children see, gone when CMD exits. credfile stays CMD's supervisor: it forwards SIGINT,
//! SIGTERM and SIGHUP, refreshes the set with `--every`, and exits with CMD's code (128+N after
//! signal N). The kernel side (namespaces, tmpfs, the helpers, signals) is `crate::namespace`.

mod inside;
mod wire;

use std::ffi::OsString;
use std::io::BufReader;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::process::Child;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Instant;

use nix::unistd::{Gid, Uid, User};
use serde_json::Value;

pub use inside::main as inside_main;

use crate::cli::RunCommandArgs;
use crate::error::Error;
use crate::manifest::{Plan, Principal, SourceKind};
use crate::materialize::{self, Destination, Outcome, Status};
use crate::namespace::channel::{self, Listener, SIGNAL};
use crate::namespace::supervise::{Caught, Ended};
use crate::namespace::{self, INSIDE_ARG, NsError, OwnIds, env};
use crate::output::{AuditLine, FetchStats};
use crate::pipeline::Trail;
use crate::pipeline::{self, FetchOptions, Pipeline, Settings};
use crate::render::{Rendered, SourceInfo};

pub fn run(args: &RunCommandArgs, settings: &Settings) -> Result<(), Error> {
    // Before any other thread exists: the forwarded signals are taken on a signalfd.
    let caught = Caught::new().map_err(|e| NsError::Helper(format!("signalfd: {e}")))?;
    let down: Shared = Arc::default();
    let started = Arc::new(AtomicBool::new(false));
    forward_signals(caught, Arc::clone(&down), Arc::clone(&started));

    let fenced = [
        ("--root", args.root.is_some()),
        ("--run-as", args.run_as.is_some()),
        ("--audit-log", args.audit_log.is_some()),
    ];
    let plan = pipeline::plan(
        &args.manifest.manifest,
        &args.env,
        args.root.as_deref(),
        &fenced,
    )?;
    // One audit line for the run, written when it ends: its files and their sources as last
    // applied, and the command's exit code (or credfile's, when it failed first).
    let mut trail = Trail::default();
    let result = supervise(args, settings, plan.clone(), &down, &started, &mut trail);
    let exit_code = match &result {
        Ok(ended) => u8::try_from(ended.exit_code()).unwrap_or(u8::MAX),
        Err(e) => e.code(),
    };
    {
        let _held = crate::every::critical();
        let mut line = AuditLine::new(
            "run",
            &plan,
            trail.caller_arn.as_deref(),
            &trail.files,
            exit_code,
        );
        line.fetch = trail.fetch;
        line.write(args.audit_log.as_deref(), settings.log_format);
    }
    exit_with(result?)
}

/// Everything after the manifest: preflight, the helper and its namespace, the first set, the
/// command, and the `--every` rounds until the command ends (its exit, returned).
fn supervise(
    args: &RunCommandArgs,
    settings: &Settings,
    plan: Plan,
    down: &Shared,
    started: &AtomicBool,
    trail: &mut Trail,
) -> Result<Ended, Error> {
    let who = who(args.run_as.as_deref(), &plan, &args.manifest.manifest)?;
    let plan = with_default_owners(plan, &who);
    // Preflight: owners resolve and can reach their files; the namespace and the tmpfs exist
    // (or the kernel's refusal is said) before any secret is fetched.
    let fixed = plan.without_expansions();
    let checked = materialize::resolve(&fixed)?;
    materialize::check_root_path(&checked)?;
    materialize::check_reach(&checked, &fixed)?;
    if args.every.is_some()
        && let Some(f) = plan.files.iter().find(|f| f.dynamic().is_some())
    {
        return Err(NsError::EveryWithDynamic {
            file: args.manifest.manifest.clone(),
            line: f.line,
            path: f.path.clone(),
            key: match f.dynamic().map(|r| r.kind) {
                Some(SourceKind::VaultPki) => "vault_pki",
                _ => "vault_lease",
            },
        }
        .into());
    }
    let mut helper = Helper::start(&plan, &who, &args.command, down)?;

    let mut pipeline = Pipeline::new(settings)?;
    // Leases and certificates: fresh for this command alone, revoked when it ends, whatever
    // the outcome (docs/src/run.md); the run's token goes with the pipeline.
    let mut decided = pipeline.fresh_dynamic(&plan)?;
    let extra = decided
        .as_mut()
        .map(|d| std::mem::take(&mut d.values))
        .unwrap_or_default();
    let ended = command(
        args,
        &mut helper,
        &mut pipeline,
        &plan,
        extra,
        started,
        trail,
    );
    if let Some(d) = &decided {
        pipeline.revoke_run(d);
    }
    ended
}

/// The first set, the command, and the `--every` rounds until it ends; `extra`: the values of
/// leases and certificates, decided before.
fn command(
    args: &RunCommandArgs,
    helper: &mut Helper,
    pipeline: &mut Pipeline,
    plan: &Plan,
    extra: Vec<(crate::manifest::SecretRef, crate::fetch::Fetched)>,
    started: &AtomicBool,
    trail: &mut Trail,
) -> Result<Ended, Error> {
    let options = FetchOptions {
        mode: args.fetch,
        want_caller: args.audit_log.is_some(),
        ..FetchOptions::default()
    };
    let fetched = pipeline.fetch_and_render(plan, options, extra);
    trail.fetch = Some(FetchStats::new(args.fetch, pipeline.settings.aws.calls()));
    let fetched = fetched?;
    trail.caller_arn = fetched.caller_arn.clone();
    let files = fetched.rendered.len();
    // From the first set on, the command may start at any moment: signals are its.
    started.store(true, Ordering::SeqCst);
    let first = helper.apply(&fetched.plan, &fetched.rendered);
    trail.files = helper.files.clone();
    if let Some(ended) = first? {
        return Ok(ended);
    }
    drop(fetched);
    match helper.next_event()? {
        e if kind(&e) == "started" => {}
        e => return Err(helper.failure(e)),
    }
    tracing::info!(
        files,
        root = %plan.root.display(),
        "the command runs with its files in a private namespace"
    );

    let mut last = Instant::now();
    let mut round = 1u64;
    loop {
        let event = match args.every {
            Some(every) => match helper
                .events
                .recv_timeout(every.saturating_sub(last.elapsed()))
            {
                Ok(e) => e,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    round += 1;
                    last = Instant::now();
                    let ended = refresh(helper, pipeline, plan, options, args, round);
                    trail.files = helper.files.clone();
                    match ended? {
                        Some(ended) => return Ok(ended),
                        None => continue,
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => return Err(gone()),
            },
            None => helper.events.recv().map_err(|_| gone())?,
        };
        if let Some(code) = ended(&event) {
            return Ok(code);
        }
        return Err(helper.failure(event));
    }
}

/// One `--every` round: a failure keeps the set in place and is said on stderr. `Some`: the
/// command ended meanwhile.
fn refresh(
    helper: &mut Helper,
    pipeline: &mut Pipeline,
    plan: &Plan,
    options: FetchOptions,
    args: &RunCommandArgs,
    round: u64,
) -> Result<Option<Ended>, Error> {
    pipeline.settings.aws.take_calls();
    let result = pipeline
        .fetch_and_render(plan, options, Vec::new())
        .and_then(|f| helper.apply(&f.plan, &f.rendered));
    match result {
        Ok(Some(code)) => return Ok(Some(code)),
        Ok(None) => {}
        Err(e) => {
            pipeline.forget_session();
            eprintln!("{}", e.render());
            tracing::warn!(
                round,
                exit_code = e.code(),
                "round failed; the files stay as they were"
            );
            return Ok(None);
        }
    }
    let changed = helper.changed;
    tracing::info!(round, changed, "round done");
    if changed > 0
        && let Some(signal) = args.reload_signal
    {
        helper.signal(signal as i32)?;
        tracing::info!(round, signal = signal.as_str(), "told the command");
    }
    Ok(None)
}

/// Who the command runs as (docs/src/run.md): the caller in a user namespace of their own ids
/// (unprivileged); under sudo, the invoking user; as root, `--run-as`, else the environment's
/// `run_as`, else root.
struct Who {
    userns: Option<OwnIds>,
    user: Option<(String, u32, u32)>,
}

fn who(run_as: Option<&str>, plan: &Plan, manifest: &std::path::Path) -> Result<Who, Error> {
    let refuse = |user: &str, reason: &str| NsError::RunAs {
        user: user.to_string(),
        reason: reason.to_string(),
    };
    let from_manifest = |why: &str| {
        if let Some(user) = &plan.run_as {
            tracing::info!(run_as = %user, "the manifest's `run_as` is not used: {why}");
        }
    };
    if !Uid::effective().is_root() {
        from_manifest("credfile is not root, so the command runs as you");
        if let Some(user) = run_as {
            return Err(refuse(user, "credfile is not root, so the command runs as you").into());
        }
        return Ok(Who {
            userns: Some(OwnIds {
                uid: Uid::effective().as_raw(),
                gid: Gid::effective().as_raw(),
            }),
            user: None,
        });
    }
    if let Some(invoker) = crate::sudo::invoker()? {
        from_manifest("under sudo the command runs as the invoking user");
        let (uid, gid) = invoker.ids();
        return Ok(Who {
            userns: None,
            user: Some((invoker.name, uid, gid)),
        });
    }
    let found = |u: Result<Option<User>, nix::Error>| match u {
        Ok(Some(u)) => Some(Who {
            userns: None,
            user: Some((u.name, u.uid.as_raw(), u.gid.as_raw())),
        }),
        _ => None,
    };
    if let Some(name) = run_as {
        from_manifest("--run-as was given");
        let user = match name.parse::<u32>() {
            Ok(uid) => User::from_uid(Uid::from_raw(uid)),
            Err(_) => User::from_name(name),
        };
        return found(user).ok_or_else(|| refuse(name, "no such user on this host").into());
    }
    let Some(principal) = &plan.run_as else {
        return Ok(Who {
            userns: None,
            user: None,
        });
    };
    let user = match principal {
        Principal::Id(uid) => User::from_uid(Uid::from_raw(*uid)),
        Principal::Name(name) => User::from_name(name),
    };
    found(user).ok_or_else(|| {
        NsError::RunAsUnknown {
            user: principal.to_string(),
            file: manifest.to_path_buf(),
            line: plan.run_as_line,
        }
        .into()
    })
}

/// Files without an `owner` (or `group`) belong to the user the command runs as.
fn with_default_owners(mut plan: Plan, who: &Who) -> Plan {
    if let Some((_, uid, gid)) = &who.user {
        for f in &mut plan.files {
            f.owner.get_or_insert(Principal::Id(*uid));
            f.group.get_or_insert(Principal::Id(*gid));
        }
    }
    plan
}

/// The command's environment (see `namespace::env`), with the identity of the user it runs as.
fn command_env(plan: &Plan, who: &Who) -> Vec<(OsString, OsString)> {
    let mut also: Vec<String> = plan
        .secret_refs()
        .into_iter()
        .filter(|r| matches!(r.kind, SourceKind::CiVariable | SourceKind::CiVariableFile))
        .map(|r| r.id)
        .collect();
    also.push(plan.identity.token_env.clone());
    let (mut vars, dropped) = env::scrub(std::env::vars_os(), &also, plan.root.as_os_str());
    if !dropped.is_empty() {
        tracing::info!(variables = %dropped.join(", "), "not passed to the command");
    }
    if let Some((name, uid, _)) = &who.user {
        let home = User::from_uid(Uid::from_raw(*uid))
            .ok()
            .flatten()
            .map(|u| u.dir.into_os_string());
        vars.retain(|(k, _)| !matches!(k.to_str(), Some("USER" | "LOGNAME" | "HOME")));
        vars.push(("USER".into(), name.into()));
        vars.push(("LOGNAME".into(), name.into()));
        if let Some(home) = home {
            vars.push(("HOME".into(), home));
        }
    }
    vars
}

/// The stream down to the namespace helper, shared with the signal thread: every frame is
/// written under its lock, so a forwarded signal never lands inside a set being sent.
type Shared = Arc<Mutex<Option<UnixStream>>>;

/// The namespace helper, as the supervisor holds it.
struct Helper {
    _child: Child,
    down: Shared,
    events: mpsc::Receiver<Value>,
    /// Files changed by the last set applied.
    changed: usize,
    /// For the audit line: each file of the last set applied with its sources (ids and
    /// versions), its status the most telling over the run (a file created, then unchanged,
    /// stays `created`; one rotated is `updated`), then the files that left the set.
    files: Vec<(Outcome, Vec<SourceInfo>)>,
}

impl Helper {
    /// Starts `__run-inside` and waits until its namespace and tmpfs exist.
    fn start(plan: &Plan, who: &Who, command: &[OsString], down: &Shared) -> Result<Helper, Error> {
        let listener = Listener::new().map_err(io)?;
        let start = wire::Start {
            parent: std::process::id(),
            socket: listener.name.clone(),
            root: plan.root.clone(),
            userns: who.userns.map(|i| (i.uid, i.gid)),
            user: who.user.clone(),
            umask: namespace::started_umask(),
        };
        let start = serde_json::to_string(&start).map_err(|e| NsError::Helper(e.to_string()))?;
        let mut child = std::process::Command::new("/proc/self/exe")
            .arg0("credfile")
            .arg(INSIDE_ARG)
            .arg(start)
            .arg("--")
            .args(command)
            .env_clear()
            .envs(command_env(plan, who))
            .spawn()
            .map_err(io)?;
        let stream = listener.accept_from(&mut child).map_err(io)?;
        let up = BufReader::new(stream.try_clone().map_err(io)?);
        let (tx, events) = mpsc::channel();
        std::thread::spawn(move || {
            let mut up = up;
            while let Ok(Some(event)) = channel::read_event(&mut up) {
                if tx.send(event).is_err() {
                    return;
                }
            }
        });
        *down.lock().unwrap_or_else(|e| e.into_inner()) = Some(stream);
        let mut helper = Helper {
            _child: child,
            down: Arc::clone(down),
            events,
            changed: 0,
            files: Vec::new(),
        };
        match helper.next_event()? {
            e if kind(&e) == "ready" => Ok(helper),
            e => Err(helper.failure(e)),
        }
    }

    fn next_event(&mut self) -> Result<Value, Error> {
        self.events.recv().map_err(|_| gone())
    }

    /// Sends a set and waits for the helper to apply it; `Some`: the command ended meanwhile.
    fn apply(&mut self, plan: &Plan, rendered: &[Rendered]) -> Result<Option<Ended>, Error> {
        let checked = materialize::resolve(plan)?;
        materialize::check_reach(&checked, plan)?;
        self.write(|down| wire::send_set(down, &checked, rendered))?;
        let event = self.next_event()?;
        if let Some(code) = ended(&event) {
            return Ok(Some(code));
        }
        if kind(&event) != "applied" {
            return Err(self.failure(event));
        }
        self.changed = event["changed"].as_u64().unwrap_or(0) as usize;
        self.record(&event, checked.files, rendered);
        Ok(None)
    }

    /// Folds an `applied` event into [`Helper::files`].
    fn record(&mut self, event: &Value, files: Vec<Destination>, rendered: &[Rendered]) {
        let words = |k: &str| -> Vec<String> {
            event[k]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        };
        let statuses = words("statuses");
        let before = std::mem::take(&mut self.files);
        let earlier = |dest: &Destination| {
            before
                .iter()
                .find(|(o, _)| o.dest.path == dest.path && o.status != Status::Removed)
                .map(|(o, _)| o.status)
        };
        for (i, (dest, r)) in files.into_iter().zip(rendered).enumerate() {
            let now = statuses
                .get(i)
                .and_then(|w| wire::status_of(w))
                .unwrap_or(Status::Updated);
            let status = match (now, earlier(&dest)) {
                (Status::Unchanged, Some(was)) => was,
                (now, _) => now,
            };
            self.files
                .push((Outcome { status, dest }, r.sources.clone()));
        }
        for path in words("removed") {
            let dest = Destination {
                path: path.into(),
                mode: 0,
                uid: 0,
                gid: 0,
            };
            self.files.push((
                Outcome {
                    status: Status::Removed,
                    dest,
                },
                Vec::new(),
            ));
        }
    }

    fn signal(&mut self, signal: i32) -> Result<(), Error> {
        self.write(|down| channel::write_frame(down, SIGNAL, &[signal as u8]))
    }

    /// Writes frames down to the helper, holding the stream for their whole length.
    fn write(
        &self,
        frames: impl FnOnce(&mut UnixStream) -> std::io::Result<()>,
    ) -> Result<(), Error> {
        let mut held = self.down.lock().unwrap_or_else(|e| e.into_inner());
        let down = held.as_mut().ok_or_else(gone)?;
        frames(down).map_err(io)
    }

    /// The error a `failed` event (or anything unexpected) stands for.
    fn failure(&self, event: Value) -> Error {
        if kind(&event) != "failed" {
            return NsError::Helper(format!("unexpected event `{}`", kind(&event))).into();
        }
        let text = |k: &str| event[k].as_str().unwrap_or_default().to_string();
        NsError::Inside {
            stage: text("stage"),
            message: text("message"),
            hint: text("hint"),
            code: event["code"]
                .as_u64()
                .and_then(|c| u8::try_from(c).ok())
                .unwrap_or(1),
        }
        .into()
    }
}

fn kind(event: &Value) -> &str {
    event["event"].as_str().unwrap_or("")
}

fn ended(event: &Value) -> Option<namespace::supervise::Ended> {
    use namespace::supervise::Ended;
    if kind(event) != "ended" {
        return None;
    }
    let n = |k: &str| event[k].as_i64().and_then(|v| i32::try_from(v).ok());
    Some(match (n("code"), n("signal")) {
        (Some(c), _) => Ended::Code(c),
        (None, Some(s)) => Ended::Signal(s),
        _ => Ended::Code(1),
    })
}

fn gone() -> Error {
    NsError::Helper("the namespace helper ended without saying why".into()).into()
}

fn io(e: std::io::Error) -> Error {
    NsError::Helper(e.to_string()).into()
}

/// Ends credfile with the command's exit code (128+N after signal N). The namespace, the
/// helpers and the files are gone with the command.
fn exit_with(ended: namespace::supervise::Ended) -> ! {
    use std::io::Write;
    let _ = std::io::stdout().flush();
    std::process::exit(ended.exit_code())
}

/// The signal thread: before the command runs, a signal ends credfile at once (nothing is on
/// any disk; the helper dies with it); afterwards it is forwarded, unless the terminal sent it
/// to the whole process group (the command got it too).
fn forward_signals(caught: Caught, down: Shared, started: Arc<AtomicBool>) {
    std::thread::spawn(move || {
        while let Ok(arrived) = caught.next() {
            let number = arrived.signal as i32;
            if !started.load(Ordering::SeqCst) {
                tracing::info!(
                    signal = arrived.signal.as_str(),
                    "stopping before the command started"
                );
                std::process::exit(128 + number);
            }
            if arrived.from_terminal {
                continue;
            }
            let mut guard = down.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(stream) = guard.as_mut() {
                let _ = channel::write_frame(stream, SIGNAL, &[number as u8]);
            }
        }
    });
}
