//! The Dockerfile, built for real. No registry is reachable here and no Docker daemon runs,
//! so: the base image it names (`debian:bookworm-slim`) is made locally, by `debootstrap
//! --variant=minbase bookworm` and `podman import`; the build stage's command (`cargo build
//! --release --locked --workspace --bins`) runs on the host; `podman build` runs the runtime
//! stage's own instructions (apt-get of fuse3 and busybox-static, the copies, the entry
//! point) with those release binaries in place of the build stage's `/out`; and `imafs demo`,
//! the image's default command, runs in a container of that image.
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The base the runtime stage names, under the name Podman resolves `debian:bookworm-slim` to.
const BASE: &str = "docker.io/library/debian:bookworm-slim";
const IMAGE: &str = "localhost/imafs-dockerfile-test";
/// The runtime stage's copy of the build stage's binaries.
const FROM_BUILD: &str = "COPY --from=build /out/ /usr/local/bin/";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The runtime stage of the Dockerfile, its binaries taken from the build context's `out/`.
fn runtime_stage(dockerfile: &str) -> String {
    let start = dockerfile
        .find("\nFROM debian:bookworm-slim AS runtime")
        .expect("the Dockerfile has a runtime stage on debian:bookworm-slim");
    let stage = &dockerfile[start + 1..];
    assert_eq!(
        stage.matches(FROM_BUILD).count(),
        1,
        "the runtime stage copies the build stage's binaries with `{FROM_BUILD}`"
    );
    stage.replace(FROM_BUILD, "COPY out/ /usr/local/bin/")
}

/// The Debian mirror the host's apt uses (debootstrap's default otherwise).
fn debian_mirror() -> String {
    let sources = std::fs::read_to_string("/etc/apt/sources.list.d/debian.sources")
        .unwrap_or_default()
        + &std::fs::read_to_string("/etc/apt/sources.list").unwrap_or_default();
    sources
        .lines()
        .find_map(|l| {
            let l = l.trim();
            let uri = l.strip_prefix("URIs:").or_else(|| {
                l.strip_prefix("deb ")
                    .and_then(|r| r.split_whitespace().next())
            })?;
            let uri = uri.split_whitespace().next()?.trim_end_matches('/');
            (uri.ends_with("/debian") && uri.starts_with("http")).then(|| uri.to_owned())
        })
        .unwrap_or_else(|| "http://deb.debian.org/debian".to_owned())
}

/// `debian:bookworm-slim` in Podman's store, made by debootstrap unless already there.
fn ensure_base() -> Result<(), String> {
    let exists = Command::new("podman")
        .args(["image", "exists", BASE])
        .status()
        .is_ok_and(|s| s.success());
    if exists {
        return Ok(());
    }
    let dir = tempfile::Builder::new()
        .prefix("imafs-bookworm")
        .tempdir_in("/var/tmp")
        .map_err(|e| e.to_string())?;
    let rootfs = dir.path().join("rootfs");
    let out = Command::new("debootstrap")
        .args(["--variant=minbase", "bookworm"])
        .arg(&rootfs)
        .arg(debian_mirror())
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "debootstrap failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    // What the slim image leaves out of a minbase system: the package cache.
    let _ = Command::new("sh")
        .arg("-c")
        .arg("rm -rf \"$1\"/var/cache/apt/archives/*.deb \"$1\"/var/lib/apt/lists/*")
        .arg("sh")
        .arg(&rootfs)
        .status();
    let tar = dir.path().join("rootfs.tar");
    run(Command::new("tar")
        .arg("-C")
        .arg(&rootfs)
        .arg("-cf")
        .arg(&tar)
        .arg("."));
    run(Command::new("podman")
        .args(["import", "-q"])
        .arg(&tar)
        .arg(BASE));
    Ok(())
}

/// The release binaries, built by the build stage's own command.
fn release_binaries() -> Vec<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    run(Command::new(cargo)
        .args(["build", "--release", "--locked", "--workspace", "--bins"])
        .current_dir(repo()));
    ["imafs", "mount-helper"]
        .iter()
        .map(|b| repo().join("target/release").join(b))
        .collect()
}

#[test]
fn the_dockerfile_runtime_stage_builds_and_runs_the_demo() {
    let test = "the_dockerfile_runtime_stage_builds_and_runs_the_demo";
    if !common::is_root() || !common::fuse_available() {
        common::skip(test, "needs root and /dev/fuse");
        return;
    }
    if let Some(tool) = ["podman", "runc", "debootstrap"]
        .into_iter()
        .find(|t| !common::have_tool(t))
    {
        common::skip(
            test,
            &format!("{tool} not installed (apt-get install podman runc debootstrap)"),
        );
        return;
    }
    if let Err(e) = ensure_base() {
        common::skip(test, &format!("no debian:bookworm-slim base image: {e}"));
        return;
    }
    let ctx = tempfile::tempdir().expect("temp dir");
    let dockerfile = std::fs::read_to_string(repo().join("Dockerfile")).expect("Dockerfile");
    std::fs::write(ctx.path().join("Containerfile"), runtime_stage(&dockerfile)).expect("write");
    std::fs::create_dir(ctx.path().join("out")).expect("mkdir");
    for bin in release_binaries() {
        std::fs::copy(
            &bin,
            ctx.path().join("out").join(bin.file_name().expect("name")),
        )
        .unwrap_or_else(|e| panic!("{}: {e}", bin.display()));
    }
    let hooks = ctx.path().join("contrib/oci-hooks.d");
    std::fs::create_dir_all(&hooks).expect("mkdir");
    for entry in std::fs::read_dir(repo().join("contrib/oci-hooks.d")).expect("hooks") {
        let path = entry.expect("entry").path();
        std::fs::copy(&path, hooks.join(path.file_name().expect("name"))).expect("copy");
    }
    // chroot isolation: the RUN steps need no OCI runtime (crun refuses this host's cgroups)
    // and reach the Debian mirror through the host's network.
    run(Command::new("podman")
        .args([
            "build",
            "-q",
            "--pull=never",
            "--isolation=chroot",
            "-t",
            IMAGE,
        ])
        .arg(ctx.path()));
    let demo = common::podman_run(None)
        .args(["--device", "/dev/fuse", "--cap-add", "SYS_ADMIN", IMAGE])
        .output()
        .expect("podman run");
    let _ = Command::new("podman").args(["rmi", "-f", IMAGE]).output();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&demo.stdout),
        String::from_utf8_lossy(&demo.stderr)
    );
    assert!(demo.status.success(), "imafs demo in the image:\n{text}");
    // The demo's list: the boot aggregate and the measured config file, and its counters.
    assert!(text.contains(" boot_aggregate"), "{text}");
    assert!(text.contains(" /etc/demo.conf"), "{text}");
    assert!(text.contains("PCR-10 sha256 "), "{text}");
}
