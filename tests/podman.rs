//! Podman with the imafs OCI hook (`mount-helper oci-hook`, contrib/oci-hooks.d): a busybox
//! image made by `podman import`, a container annotated `io.imafs.enable=true` sees its own
//! measured overlay and `/sys/kernel/security/integrity/ima`, its daemon ends with it, a
//! container without the annotation is untouched, a bad annotation refuses the start.
//! Podman runs here with runc and cgroupfs (crun refuses this host's hybrid cgroups).
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sha2::{Digest, Sha256};

struct Env {
    _dir: tempfile::TempDir,
    hooks: PathBuf,
    image: String,
}

fn setup(test: &str) -> Option<Env> {
    setup_with(test, &[])
}

/// [`setup`] with host files copied into the image at the same paths.
fn setup_with(test: &str, host_files: &[&str]) -> Option<Env> {
    if !common::is_root() || !common::have_tool("podman") || !common::have_tool("runc") {
        common::skip(
            test,
            "needs root, podman and runc (apt-get install podman runc)",
        );
        return None;
    }
    let helper = common::imafs_bin().with_file_name("mount-helper");
    if !helper.is_file() {
        common::skip(
            test,
            "mount-helper is not built (cargo test --workspace builds it)",
        );
        return None;
    }
    let rootfs = common::busybox_rootfs(test, &["sh", "cat", "echo", "test", "ls"])?;
    for file in host_files {
        let to = rootfs.path().join(file.trim_start_matches('/'));
        std::fs::create_dir_all(to.parent().expect("parent")).expect("mkdir");
        if std::fs::copy(file, &to).is_err() {
            common::skip(test, &format!("{file} missing (not x86-64 Debian)"));
            return None;
        }
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let tar = dir.path().join("rootfs.tar");
    let ok = Command::new("tar")
        .arg("-C")
        .arg(rootfs.path())
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .expect("tar")
        .success();
    assert!(ok);
    // One image per test: each removes its own when done, while others may still run.
    let image = format!("localhost/imafs-{test}-{}", std::process::id()).replace('_', "-");
    let imported = Command::new("podman")
        .args(["import", "-q"])
        .arg(&tar)
        .arg(&image)
        .output()
        .expect("podman import");
    if !imported.status.success() {
        common::skip(
            test,
            &format!(
                "podman import failed: {}",
                String::from_utf8_lossy(&imported.stderr)
            ),
        );
        return None;
    }
    let hooks = dir.path().join("hooks");
    std::fs::create_dir(&hooks).expect("mkdir");
    let contrib = Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/oci-hooks.d");
    for entry in std::fs::read_dir(contrib).expect("contrib hooks") {
        let path = entry.expect("entry").path();
        let text = std::fs::read_to_string(&path).expect("read");
        let text = text.replace(
            "/usr/local/bin/mount-helper",
            helper.to_str().expect("utf-8"),
        );
        std::fs::write(hooks.join(path.file_name().expect("name")), text).expect("write");
    }
    Some(Env {
        _dir: dir,
        hooks,
        image,
    })
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = Command::new("podman")
            .args(["rmi", "-f", &self.image])
            .output();
    }
}

fn podman_run(env: &Env, annotations: &[&str], script: &str) -> Output {
    let mut cmd = common::podman_run(Some(&env.hooks));
    for a in annotations {
        cmd.args(["--annotation", a]);
    }
    cmd.arg(&env.image).args(["sh", "-c", script]);
    cmd.output().expect("podman run")
}

fn daemons_of_containers() -> usize {
    let out = Command::new("pgrep")
        .args(["-f", "imafs serve --rootfs /var/lib/containers"])
        .output()
        .expect("pgrep");
    String::from_utf8_lossy(&out.stdout).lines().count()
}

/// The hook merges the container's exec mappings into its seccomp profile (runc's
/// `listenerPath`, to the daemon's socket): the loader's mapping of libc, which no open of a
/// measuring rule covers, is recorded under `measure func=MMAP_CHECK`.
#[test]
fn podman_container_s_exec_mappings_reach_the_daemon_through_runc() {
    let test = "podman_container_s_exec_mappings_reach_the_daemon_through_runc";
    let libc = "/lib/x86_64-linux-gnu/libc.so.6";
    let Some(env) = setup_with(
        test,
        &["/usr/bin/true", "/lib64/ld-linux-x86-64.so.2", libc],
    ) else {
        return;
    };
    let policy = env._dir.path().join("policy");
    std::fs::write(
        &policy,
        "dont_measure fsmagic=0x73636673\nmeasure func=MMAP_CHECK mask=MAY_EXEC\n",
    )
    .expect("write");
    let out = podman_run(
        &env,
        &[
            "io.imafs.enable=true",
            &format!("io.imafs.policy={}", policy.display()),
        ],
        "/usr/bin/true && cat /sys/kernel/security/imafs/exec_watch \
         /sys/kernel/security/integrity/ima/ascii_runtime_measurements_sha256",
    );
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.starts_with("measured\n"), "{text}");
    let want = format!(
        "sha256:{} {libc}",
        hex::encode(Sha256::digest(std::fs::read(libc).expect("read")))
    );
    assert!(text.lines().any(|l| l.ends_with(&want)), "{want}: {text}");
}

#[test]
fn podman_container_with_the_hook_is_measured_and_cleaned_up() {
    let test = "podman_container_with_the_hook_is_measured_and_cleaned_up";
    let Some(env) = setup(test) else { return };
    let policy = env._dir.path().join("policy");
    std::fs::write(&policy, "measure func=BPRM_CHECK\n").expect("write");
    let before = daemons_of_containers();
    let started = std::time::Instant::now();
    let out = podman_run(
        &env,
        &[
            "io.imafs.enable=true",
            &format!("io.imafs.policy={}", policy.display()),
        ],
        "cat /sys/kernel/security/integrity/ima/ascii_runtime_measurements",
    );
    let with_hook = started.elapsed();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list = String::from_utf8_lossy(&out.stdout).to_string();
    let busybox = std::fs::read(common::static_busybox().expect("busybox")).expect("read");
    let want = format!(
        "sha256:{} /bin/busybox",
        hex::encode(Sha256::digest(&busybox))
    );
    assert!(list.lines().any(|l| l.ends_with(&want)), "{list}");
    assert!(list
        .lines()
        .next()
        .unwrap_or_default()
        .ends_with(" boot_aggregate"));
    // The daemon ends with the container (the prestart hook's watcher stops it).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while daemons_of_containers() > before {
        assert!(
            std::time::Instant::now() < deadline,
            "imafs serve outlived its container"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let started = std::time::Instant::now();
    let plain = podman_run(
        &env,
        &[],
        "test -e /sys/kernel/security/integrity/ima && echo imafs",
    );
    let without = started.elapsed();
    assert_eq!(
        String::from_utf8_lossy(&plain.stdout),
        "",
        "a container without the annotation"
    );
    eprintln!(
        "PODMAN container run: {:.0} ms with the hook, {:.0} ms without",
        with_hook.as_secs_f64() * 1e3,
        without.as_secs_f64() * 1e3
    );
}

#[test]
fn podman_refuses_a_container_with_a_bad_annotation() {
    let test = "podman_refuses_a_container_with_a_bad_annotation";
    let Some(env) = setup(test) else { return };
    let out = podman_run(
        &env,
        &["io.imafs.enable=true", "io.imafs.appraise=sometimes"],
        "echo started",
    );
    assert!(!out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "");
    // Podman does not relay a hook's stderr: it names the failed hook.
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("oci-hook precreate"), "{err}");
}

/// The user rootless Podman runs as: created with a subordinate id range when missing.
const ROOTLESS_USER: &str = "imafs-podtest";

fn rootless_user(test: &str) -> Option<u32> {
    let exists = |name: &str| {
        Command::new("id")
            .args(["-u", name])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .and_then(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .trim()
                    .parse::<u32>()
                    .ok()
            })
    };
    if exists(ROOTLESS_USER).is_none() {
        let made = Command::new("useradd")
            .args(["-m", "-s", "/bin/sh", ROOTLESS_USER])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !made {
            common::skip(test, "cannot create a user for rootless Podman (useradd)");
            return None;
        }
    }
    for file in ["/etc/subuid", "/etc/subgid"] {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        if !text
            .lines()
            .any(|l| l.starts_with(&format!("{ROOTLESS_USER}:")))
        {
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .open(file)
                .expect(file);
            std::io::Write::write_all(&mut f, format!("{ROOTLESS_USER}:300000:65536\n").as_bytes())
                .expect(file);
        }
    }
    exists(ROOTLESS_USER)
}

#[test]
fn rootless_podman_container_with_the_hook_is_measured() {
    let test = "rootless_podman_container_with_the_hook_is_measured";
    let Some(env) = setup(test) else { return };
    if !common::have_tool("newuidmap") {
        common::skip(test, "newuidmap missing (uidmap package)");
        return;
    }
    let Some(uid) = rootless_user(test) else {
        return;
    };
    // Everything the user's Podman and hooks read must be theirs or world-readable.
    let home = format!("/home/{ROOTLESS_USER}");
    let bin = tempfile::Builder::new()
        .prefix("imafs-rootless")
        .tempdir()
        .expect("dir");
    let b = bin.path();
    for name in ["imafs", "mount-helper"] {
        std::fs::copy(common::imafs_bin().with_file_name(name), b.join(name)).expect("copy");
    }
    std::fs::write(b.join("policy"), "measure func=BPRM_CHECK\n").expect("write");
    std::fs::create_dir(b.join("hooks")).expect("mkdir");
    for entry in std::fs::read_dir(&env.hooks).expect("hooks") {
        let path = entry.expect("entry").path();
        let text = std::fs::read_to_string(&path).expect("read");
        let helper = common::imafs_bin().with_file_name("mount-helper");
        let text = text.replace(
            helper.to_str().expect("utf-8"),
            b.join("mount-helper").to_str().expect("utf-8"),
        );
        std::fs::write(b.join("hooks").join(path.file_name().expect("name")), text).expect("write");
    }
    let status = Command::new("chmod").args(["-R", "a+rX"]).arg(b).status();
    assert!(status.expect("chmod").success());
    let tar = format!("{home}/imafs-test.tar");
    let rootfs = common::busybox_rootfs(test, &["sh", "cat"]).expect("rootfs");
    let ok = Command::new("tar")
        .arg("-C")
        .arg(rootfs.path())
        .args(["-cf", &tar, "."])
        .status()
        .expect("tar")
        .success();
    assert!(ok);
    let _ = Command::new("chown").args([ROOTLESS_USER, &tar]).status();
    let script = format!(
        "export XDG_RUNTIME_DIR=/tmp/imafs-podtest-run-{uid}; mkdir -p $XDG_RUNTIME_DIR; cd; \
         podman import -q {tar} localhost/imafs-rootless > /dev/null && \
         podman --hooks-dir {hooks} --runtime runc --cgroup-manager=cgroupfs run --rm \
         --ulimit nofile=1024:1024 --ulimit nproc=4096:4096 \
         --annotation io.imafs.enable=true --annotation io.imafs.policy={policy} \
         localhost/imafs-rootless sh -c 'cat /sys/kernel/security/integrity/ima/ascii_runtime_measurements'",
        hooks = b.join("hooks").display(),
        policy = b.join("policy").display(),
    );
    let out = Command::new("su")
        .args([ROOTLESS_USER, "-c", &script])
        .output()
        .expect("su");
    let list = String::from_utf8_lossy(&out.stdout).to_string();
    if !out.status.success() && list.is_empty() {
        let err = String::from_utf8_lossy(&out.stderr);
        if err.contains("newuidmap") || err.contains("cannot set up namespace") {
            common::skip(test, &format!("rootless Podman cannot run here: {err}"));
            return;
        }
        panic!("rootless podman: {err}");
    }
    let busybox = std::fs::read(common::static_busybox().expect("busybox")).expect("read");
    let want = format!(
        "sha256:{} /bin/busybox",
        hex::encode(Sha256::digest(&busybox))
    );
    assert!(list.lines().any(|l| l.ends_with(&want)), "{list}");
}
