//! `imafs serve --securityfs DIR [--mount DIR --rootfs DIR] [ENGINE OPTIONS] [--events FILE]`:
//! the long-running daemon for one container. The securityfs view is mounted at DIR; with
//! `--mount`, the measuring overlay of `--rootfs` too. SIGTERM/SIGINT unmount both and exit 0.
//!
//! Fixture mode (`--events FILE`, for tests and replays): each line `read PATH`,
//! `exec PATH` or `write PATH` opens the host file PATH as that access would (FILE_CHECK
//! with MAY_READ; FILE_CHECK + BPRM_CHECK with MAY_EXEC; FILE_CHECK with MAY_WRITE), runs
//! the engine's hooks with PATH as the container path, and closes it again. Blank lines
//! and `#` comments are skipped. A regular file is replayed before the mount appears; a
//! FIFO (or `-` for stdin) is followed while serving, so records can be appended live.
//! Once the securityfs mount is live the daemon prints `ready` on stdout.

use std::fs::File;
use std::io::{self, BufRead, Write};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use crate::engine::hash::HashAlgo;
use crate::fs::caller::OpenInfo;
use crate::fs::ima_hooks::ImaHooks;
use crate::fs::mappings::{self, Coverage, Watch};
use crate::fs::nest::NestHost;
use crate::fs::overlay::{Overlay, OverlayOptions};
use crate::fs::securityfs::{SecurityFs, SecurityFsOptions};
use crate::fs::session::UnmountWatchdog;

use super::engine_args::EngineArgs;
use super::overlay_mount::OverlayTuning;

/// `imafs serve` arguments.
#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// Where to mount the securityfs view (bind it to the container's /sys/kernel/security).
    #[arg(long, value_name = "DIR")]
    pub securityfs: PathBuf,
    /// Where to mount the measuring overlay of --rootfs.
    #[arg(long, value_name = "DIR", requires = "rootfs")]
    pub mount: Option<PathBuf>,
    /// Lower tree of the overlay.
    #[arg(long, value_name = "DIR")]
    pub rootfs: Option<PathBuf>,
    #[command(flatten)]
    pub engine: EngineArgs,
    /// Fixture events (`read|exec|write <host path>` per line); a FIFO or `-` is followed
    /// while serving.
    #[arg(long, value_name = "FILE")]
    pub events: Option<PathBuf>,
    /// Continue a saved binary measurement list (a restarted daemon; also how benchmarks
    /// load large lists): the records are restored and the PCRs re-extended.
    #[arg(long, value_name = "FILE")]
    pub restore_list: Option<PathBuf>,
    /// Template-digest bank of the --restore-list file.
    #[arg(long, value_name = "ALG", default_value = "sha1")]
    pub restore_bank: String,
    /// FUSE worker threads of the securityfs view (at least 4).
    #[arg(long, default_value_t = 4)]
    pub threads: usize,
    /// Owner of the securityfs nodes, as `UID:GID` in the daemon's user namespace. Default:
    /// the daemon's effective ids, i.e. 0:0 (as on a kernel) when it runs as root or as a
    /// user namespace's root; an unprivileged daemon owns them itself, since with the
    /// kernel's modes (0440, 0600) nobody else could read a view it mounted without
    /// allow_other.
    #[arg(long, value_name = "UID:GID", value_parser = parse_owner)]
    pub owner: Option<(u32, u32)>,
    /// Serve file data through the daemon instead of kernel FUSE passthrough.
    #[arg(long)]
    pub no_passthrough: bool,
    /// Listen on this Unix socket for a container runtime's seccomp listener (runc's
    /// `linux.seccomp.listenerPath`, which the OCI hook sets) and measure the container's
    /// exec mappings and execs outside the overlay through it.
    #[arg(long, value_name = "PATH", requires = "mount")]
    pub seccomp_listener: Option<PathBuf>,
    #[command(flatten)]
    pub tuning: OverlayTuning,
}

fn parse_owner(s: &str) -> Result<(u32, u32), String> {
    let (uid, gid) = s
        .split_once(':')
        .ok_or_else(|| format!("{s}: expected UID:GID"))?;
    let id = |v: &str| {
        v.parse::<u32>()
            .map_err(|_| format!("{v}: not a numeric id"))
    };
    Ok((id(uid)?, id(gid)?))
}

/// Replay one fixture line; `Ok(false)` for a blank or comment line.
pub fn replay_event(hooks: &ImaHooks, line: &str) -> Result<bool, String> {
    let line = line.trim_end_matches(['\n', '\r']);
    let trimmed = line.trim_start();
    if trimmed.is_empty() || trimmed.starts_with('#') {
        return Ok(false);
    }
    let (verb, path) = trimmed
        .split_once(' ')
        .ok_or_else(|| format!("{line:?}: expected `read|exec|write PATH`"))?;
    let (flags, exec) = match verb {
        "read" => (libc::O_RDONLY, false),
        "exec" => (libc::O_RDONLY, true),
        "write" => (libc::O_WRONLY, false),
        other => return Err(format!("{other:?}: unknown event (read, exec, write)")),
    };
    let file = std::fs::OpenOptions::new()
        .read(flags == libc::O_RDONLY)
        .write(flags == libc::O_WRONLY)
        .open(path)
        .map_err(|e| format!("{path}: {e}"))?;
    let info = OpenInfo {
        flags,
        exec,
        created: false,
        pid: std::process::id(),
        uid: 0,
        gid: 0,
        path: path.as_bytes(),
    };
    let opened = hooks.open(&info, &file);
    if opened.is_ok() {
        if let Ok(meta) = rustix::fs::fstat(&file) {
            hooks.release(&meta, flags);
        }
    }
    opened.map_err(|e| format!("{path}: {verb} refused: {e}"))?;
    Ok(true)
}

fn replay_stream(hooks: &ImaHooks, reader: impl BufRead) {
    for line in reader.lines() {
        match line {
            Ok(line) => {
                if let Err(e) = replay_event(hooks, &line) {
                    eprintln!("imafs serve: event {e}");
                }
            }
            Err(e) => {
                eprintln!("imafs serve: events: {e}");
                return;
            }
        }
    }
}

/// Whether the events source is followed while serving (FIFO, stdin) or replayed first.
fn is_live_source(path: &Path) -> bool {
    path == Path::new("-")
        || std::fs::metadata(path)
            .map(|m| m.file_type().is_fifo())
            .unwrap_or(false)
}

pub fn main(args: ServeArgs) -> ExitCode {
    match serve(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("imafs serve: {e}");
            ExitCode::FAILURE
        }
    }
}

fn serve(mut args: ServeArgs) -> Result<(), String> {
    let parent = args.engine.join_parent()?;
    let saved = match &args.restore_list {
        Some(path) => {
            let bank = HashAlgo::from_name(&args.restore_bank).ok_or_else(|| {
                format!("--restore-bank {}: unknown algorithm", args.restore_bank)
            })?;
            let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
            Some((bytes, bank))
        }
        None => None,
    };
    let ima = args
        .engine
        .build_restoring(saved.as_ref().map(|(b, bank)| (&b[..], *bank)))?;
    drop(saved);
    let ima = Arc::new(ima);
    let ima_xattr = args.engine.ima_xattr_name();
    let mut hooks = ImaHooks::new(ima.clone()).with_ima_xattr(&ima_xattr);
    if let Some(parent) = parent {
        hooks = hooks.with_parent(parent);
    }
    if let Some(rootfs) = &args.rootfs {
        hooks = hooks.with_lower_root(rootfs);
    }
    let hooks = Arc::new(hooks);
    if let Some(events) = &args.events {
        if !is_live_source(events) {
            let f = File::open(events).map_err(|e| format!("{}: {e}", events.display()))?;
            replay_stream(&hooks, io::BufReader::new(f));
        }
    }
    let overlay = match (&args.mount, &args.rootfs) {
        (Some(mount), Some(rootfs)) => {
            let options = OverlayOptions {
                passthrough: !args.no_passthrough,
                hooks: hooks.clone(),
                ima_xattr: ima_xattr.clone(),
                ..args.tuning.apply(OverlayOptions::default())
            };
            let overlay = Overlay::new(rootfs, options)
                .and_then(|o| o.mount(mount))
                .map_err(|e| format!("overlay {}: {e}", mount.display()))?;
            Some(overlay)
        }
        _ => None,
    };
    let (uid, gid) = args.owner.unwrap_or_else(|| {
        (
            rustix::process::geteuid().as_raw(),
            rustix::process::getegid().as_raw(),
        )
    });
    let nest = overlay
        .as_ref()
        .map(|o| Arc::new(NestHost::new(hooks.clone(), Some(o.status().clone()))));
    let nest_host = nest.clone();
    let mut fs = SecurityFs::with_nest(
        ima,
        SecurityFsOptions {
            threads: args.threads,
            uid,
            gid,
            ..SecurityFsOptions::default()
        },
        nest,
    );
    if let (Some(path), Some(overlay), Some(mount)) =
        (&args.seccomp_listener, &overlay, &args.mount)
    {
        let coverage = Coverage::default();
        let watch = Watch {
            hooks: hooks.clone(),
            overlay: overlay.status().clone(),
            overlay_root: mount.clone(),
            nest: nest_host.clone(),
            passed_down: false,
            coverage: coverage.clone(),
        };
        mappings::serve_runtime(path, watch)
            .map_err(|e| format!("--seccomp-listener {}: {e}", path.display()))?;
        fs = fs.with_exec_watch(coverage);
    }
    // A kill -9 of this daemon must not leave dead mounts (ENOTCONN) behind.
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let mut watchdogs = Vec::new();
    for dir in std::iter::once(&args.securityfs).chain(args.mount.as_ref()) {
        match UnmountWatchdog::spawn(&exe, &["unmount-watchdog"], dir) {
            Ok(w) => watchdogs.push(w),
            Err(e) => eprintln!("imafs serve: unmount watchdog: {e}"),
        }
    }
    let live = args.events.clone().filter(|p| is_live_source(p));
    let served = fs.serve_with(&args.securityfs, || {
        if let Some(source) = live {
            let hooks = hooks.clone();
            let spawned = std::thread::Builder::new()
                .name("imafs-events".into())
                .spawn(move || {
                    if source == Path::new("-") {
                        replay_stream(&hooks, io::stdin().lock());
                    } else {
                        match File::open(&source) {
                            Ok(f) => replay_stream(&hooks, io::BufReader::new(f)),
                            Err(e) => eprintln!("imafs serve: {}: {e}", source.display()),
                        }
                    }
                });
            if let Err(e) = spawned {
                eprintln!("imafs serve: events thread: {e}");
            }
        }
        let mut out = io::stdout().lock();
        let _ = writeln!(out, "ready");
        let _ = out.flush();
    });
    if let Some(overlay) = overlay {
        if let Err(e) = overlay.unmount() {
            eprintln!("imafs serve: overlay unmount: {e}");
        }
    }
    drop(watchdogs);
    served.map_err(|e| format!("securityfs {}: {e}", args.securityfs.display()))
}
