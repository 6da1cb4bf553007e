//! Sharing the `--tpm` TPM with the container's attestation agent (`--tpm-share PATH` or
//! `--tpm-share host=H,port=P`): sockets that speak what swtpm's server sockets speak, so that
//! tpm2-tss's swtpm TCTI (tpm2-tss src/tss2-tcti/tcti-swtpm.c: `swtpm:path=PATH`, or
//! `swtpm:host=H,port=P` as the Rust agent's tss-esapi can only name it) reaches the TPM
//! through imafs:
//!
//! - `PATH` (or TCP port P), the data channel: raw TPM 2.0 command byte streams (TPM 2.0 Library Part 1,
//!   "Command/Response Structure": a 10-byte header whose `commandSize` counts the whole
//!   command). One whole command is read, sent to the TPM over [`TpmLink::transact`], under
//!   the lock the engine's own PCR extends take, and the whole response written back; a
//!   connection may carry any number of commands (the TCTI connects once per command). When
//!   the TPM does not answer, the client gets `TPM_RC_FAILURE` and the daemon logs why.
//! - `PATH.ctrl` (or TCP port P + 1), the control channel (swtpm's `docs/swtpm_ioctls` / `ptm_*` commands, one
//!   per connection as the TCTI sends them): `CMD_SET_LOCALITY` to 0, which the TCTI sends at
//!   init, is answered with success; everything else (another locality, `CMD_INIT`, ...)
//!   with `TPM_FAIL`, since resetting or re-initialising the TPM would break the list's
//!   correspondence with PCR 10.
//!
//! The IMA PCR is the daemon's alone: `TPM2_PCR_Extend`, `TPM2_PCR_Event` and
//! `TPM2_PCR_Reset` of it get `TPM_RC_LOCALITY` (Part 3: "current command locality not
//! allowed to extend/reset the PCR referenced by pcrHandle") without reaching the TPM, so a
//! client cannot make the TPM disagree with the list. Any other command passes unchanged;
//! transient objects and sessions are the clients' own business, as on a TPM without a
//! resource manager (imafs's own commands use none).

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::tpm::{TpmLink, MAX_RESPONSE, TPM_CC_PCR_EXTEND, TPM_ST_NO_SESSIONS};

const TPM_CC_PCR_EVENT: u32 = 0x0000_013c;
const TPM_CC_PCR_RESET: u32 = 0x0000_013d;
/// TPM_RC_LOCALITY (RC_WARN + 0x007; Part 2 "TPM_RC").
pub const TPM_RC_LOCALITY: u32 = 0x0000_0907;
/// TPM_RC_FAILURE (RC_VER1 + 0x001; Part 2 "TPM_RC"): the TPM is in failure mode.
pub const TPM_RC_FAILURE: u32 = 0x0000_0101;
/// swtpm control channel command codes (swtpm's `include/swtpm/tpm_ioctl.h`).
const CMD_SET_LOCALITY: u32 = 0x05;
/// libtpms's TPM_FAIL: the control command's result when imafs does not carry it out.
const TPM_FAIL: u32 = 0x09;
/// Largest command accepted.
const MAX_COMMAND: usize = MAX_RESPONSE;
/// A client that starts a command and stops sending is dropped after this long.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);

/// Why the shared socket could not be served.
#[derive(Debug, thiserror::Error)]
pub enum TpmShareError {
    #[error("{path}: exists and is not a socket")]
    NotASocket { path: PathBuf },
    #[error("{path}: {source}")]
    Bind {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{spec}: expected PATH or host=H,port=P")]
    BadSpec { spec: String },
}

/// Where the share listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShareAddr {
    /// `PATH` and `PATH.ctrl`.
    Unix(PathBuf),
    /// TCP `host:port` and `host:port+1` (swtpm's convention for its control channel).
    Tcp(String, u16),
}

impl ShareAddr {
    /// `PATH`, `path=PATH`, or `host=H,port=P` (host defaults to 127.0.0.1), as `--tpm
    /// swtpm:...` names a swtpm.
    pub fn parse(spec: &str) -> Result<ShareAddr, TpmShareError> {
        let bad = || TpmShareError::BadSpec {
            spec: spec.to_string(),
        };
        if !spec.contains('=') {
            return if spec.is_empty() {
                Err(bad())
            } else {
                Ok(ShareAddr::Unix(spec.into()))
            };
        }
        let (mut path, mut host, mut port) = (None, None, None);
        for part in spec.split(',') {
            match part.split_once('=') {
                Some(("path", v)) if !v.is_empty() => path = Some(v),
                Some(("host", v)) if !v.is_empty() => host = Some(v),
                Some(("port", v)) => port = Some(v.parse::<u16>().map_err(|_| bad())?),
                _ => return Err(bad()),
            }
        }
        match (path, host, port) {
            (Some(p), None, None) => Ok(ShareAddr::Unix(p.into())),
            (None, h, Some(p)) if p < u16::MAX => {
                Ok(ShareAddr::Tcp(h.unwrap_or("127.0.0.1").to_string(), p))
            }
            _ => Err(bad()),
        }
    }
}

/// A client connection, unix or TCP.
trait Stream: Read + Write + Send {
    fn set_timeouts(&self, t: Duration) -> io::Result<()>;
}

impl Stream for UnixStream {
    fn set_timeouts(&self, t: Duration) -> io::Result<()> {
        self.set_read_timeout(Some(t))?;
        self.set_write_timeout(Some(t))
    }
}

impl Stream for TcpStream {
    fn set_timeouts(&self, t: Duration) -> io::Result<()> {
        self.set_nodelay(true)?;
        self.set_read_timeout(Some(t))?;
        self.set_write_timeout(Some(t))
    }
}

/// A listening socket, unix or TCP.
enum Listener {
    Unix(UnixListener),
    Tcp(TcpListener),
}

impl Listener {
    fn accept(&self) -> io::Result<Box<dyn Stream>> {
        Ok(match self {
            Listener::Unix(l) => Box::new(l.accept()?.0),
            Listener::Tcp(l) => Box::new(l.accept()?.0),
        })
    }
}

/// What one client command is, as far as the share is concerned.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Send it to the TPM.
    Forward,
    /// Answer with this response code, do not send it.
    Refuse(u32),
}

/// Whether a whole command (header included) may go to the TPM: changes of `ima_pcr` are
/// the daemon's only.
pub fn check_command(cmd: &[u8], ima_pcr: u32) -> Verdict {
    if cmd.len() < 14 {
        return Verdict::Forward;
    }
    let cc = u32::from_be_bytes([cmd[6], cmd[7], cmd[8], cmd[9]]);
    let handle = u32::from_be_bytes([cmd[10], cmd[11], cmd[12], cmd[13]]);
    match cc {
        TPM_CC_PCR_EXTEND | TPM_CC_PCR_EVENT | TPM_CC_PCR_RESET if handle == ima_pcr => {
            Verdict::Refuse(TPM_RC_LOCALITY)
        }
        _ => Verdict::Forward,
    }
}

/// A response of only a header with response code `rc`.
pub fn error_response(rc: u32) -> Vec<u8> {
    let mut r = Vec::with_capacity(10);
    r.extend_from_slice(&TPM_ST_NO_SESSIONS.to_be_bytes());
    r.extend_from_slice(&10u32.to_be_bytes());
    r.extend_from_slice(&rc.to_be_bytes());
    r
}

/// Why one client connection ended.
#[derive(Debug, thiserror::Error)]
enum ClientEnd {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("command size {0} out of range")]
    BadSize(usize),
}

/// Read one whole command; `None` at a clean end of stream before a command.
fn read_command(s: &mut impl Read) -> Result<Option<Vec<u8>>, ClientEnd> {
    let mut head = [0u8; 10];
    let mut got = 0;
    while got < head.len() {
        match s.read(&mut head[got..]) {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into()),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    let size = u32::from_be_bytes([head[2], head[3], head[4], head[5]]) as usize;
    if !(10..=MAX_COMMAND).contains(&size) {
        return Err(ClientEnd::BadSize(size));
    }
    let mut cmd = head.to_vec();
    cmd.resize(size, 0);
    s.read_exact(&mut cmd[10..])?;
    Ok(Some(cmd))
}

/// Serve one data-channel client until it disconnects.
fn serve_client(mut s: Box<dyn Stream>, link: &TpmLink, ima_pcr: u32) -> Result<(), ClientEnd> {
    s.set_timeouts(CLIENT_TIMEOUT)?;
    while let Some(cmd) = read_command(&mut s)? {
        let resp = match check_command(&cmd, ima_pcr) {
            Verdict::Forward => match link.transact(&cmd) {
                Ok(resp) => resp,
                // The client hears what a TPM in failure mode answers, at once, rather than a
                // dropped connection; the daemon's log says why.
                Err(e) => {
                    log::error!(
                        "TPM share ({}): the TPM did not answer a client's command: {e}",
                        link.spec()
                    );
                    error_response(TPM_RC_FAILURE)
                }
            },
            Verdict::Refuse(rc) => {
                log::warn!(
                    "TPM share: a client's change of PCR {ima_pcr} refused (the list's PCR)"
                );
                error_response(rc)
            }
        };
        s.write_all(&resp)?;
    }
    Ok(())
}

/// Serve one control-channel command.
fn serve_ctrl(mut s: Box<dyn Stream>) -> io::Result<()> {
    s.set_timeouts(CLIENT_TIMEOUT)?;
    let mut code = [0u8; 4];
    s.read_exact(&mut code)?;
    let result = match u32::from_be_bytes(code) {
        CMD_SET_LOCALITY => {
            let mut locality = [0u8; 1];
            s.read_exact(&mut locality)?;
            if locality[0] == 0 {
                0
            } else {
                TPM_FAIL
            }
        }
        other => {
            log::warn!("TPM share: control command {other:#x} not carried out");
            TPM_FAIL
        }
    };
    s.write_all(&result.to_be_bytes())
}

/// Bind `path`, replacing a socket left by an earlier daemon.
fn bind_unix(path: &Path) -> Result<Listener, TpmShareError> {
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(TpmShareError::NotASocket {
                path: path.to_path_buf(),
            });
        }
        let _ = std::fs::remove_file(path);
    }
    UnixListener::bind(path)
        .map(Listener::Unix)
        .map_err(|source| TpmShareError::Bind {
            path: path.to_path_buf(),
            source,
        })
}

fn bind_tcp(host: &str, port: u16) -> Result<Listener, TpmShareError> {
    TcpListener::bind((host, port))
        .map(Listener::Tcp)
        .map_err(|source| TpmShareError::Bind {
            path: format!("{host}:{port}").into(),
            source,
        })
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> Result<(), TpmShareError> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(f)
        .map(|_| ())
        .map_err(|source| TpmShareError::Bind {
            path: name.into(),
            source,
        })
}

/// Serve `addr`'s data and control channels for the life of the process: a thread accepts
/// on each, a thread per data connection. `ima_pcr` is the PCR clients may not change.
pub fn serve(addr: &ShareAddr, link: Arc<TpmLink>, ima_pcr: u32) -> Result<(), TpmShareError> {
    let (data, ctrl) = match addr {
        ShareAddr::Unix(path) => {
            let mut ctrl_path = path.as_os_str().to_owned();
            ctrl_path.push(".ctrl");
            (bind_unix(path)?, bind_unix(Path::new(&ctrl_path))?)
        }
        ShareAddr::Tcp(host, port) => (bind_tcp(host, *port)?, bind_tcp(host, port + 1)?),
    };
    let spec = link.spec().to_string();
    spawn("tpm-share", move || loop {
        let conn = match data.accept() {
            Ok(c) => c,
            Err(e) => {
                log::warn!("TPM share: accept: {e}");
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        let link = Arc::clone(&link);
        let spawned = std::thread::Builder::new()
            .name("tpm-share-client".into())
            .spawn(move || {
                if let Err(e) = serve_client(conn, &link, ima_pcr) {
                    log::warn!("TPM share ({}): client dropped: {e}", link.spec());
                }
            });
        if let Err(e) = spawned {
            log::warn!("TPM share: no thread for a client: {e}");
        }
    })?;
    spawn("tpm-share-ctrl", move || loop {
        match ctrl.accept() {
            Ok(conn) => {
                if let Err(e) = serve_ctrl(conn) {
                    log::warn!("TPM share ({spec}): control client: {e}");
                }
            }
            Err(e) => {
                log::warn!("TPM share: accept: {e}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(cc: u32, handle: u32) -> Vec<u8> {
        let mut c = vec![0x80, 0x02, 0, 0, 0, 14];
        c.extend_from_slice(&cc.to_be_bytes());
        c.extend_from_slice(&handle.to_be_bytes());
        c
    }

    #[test]
    fn ima_pcr_changes_are_refused() {
        for cc in [TPM_CC_PCR_EXTEND, TPM_CC_PCR_EVENT, TPM_CC_PCR_RESET] {
            assert_eq!(
                check_command(&cmd(cc, 10), 10),
                Verdict::Refuse(TPM_RC_LOCALITY)
            );
            assert_eq!(check_command(&cmd(cc, 16), 10), Verdict::Forward);
        }
        // TPM2_Quote (0x158) of anything passes; a runt passes to the TPM to be refused.
        assert_eq!(check_command(&cmd(0x158, 10), 10), Verdict::Forward);
        assert_eq!(check_command(&[0x80, 0x01], 10), Verdict::Forward);
        assert_eq!(
            error_response(0x907),
            [0x80, 0x01, 0, 0, 0, 10, 0, 0, 0x09, 0x07]
        );
    }

    #[test]
    fn share_addresses() {
        assert_eq!(
            ShareAddr::parse("/run/c1/tpm").unwrap(),
            ShareAddr::Unix("/run/c1/tpm".into())
        );
        assert_eq!(
            ShareAddr::parse("path=/run/c1/tpm").unwrap(),
            ShareAddr::Unix("/run/c1/tpm".into())
        );
        assert_eq!(
            ShareAddr::parse("port=2400").unwrap(),
            ShareAddr::Tcp("127.0.0.1".into(), 2400)
        );
        assert_eq!(
            ShareAddr::parse("host=::1,port=2400").unwrap(),
            ShareAddr::Tcp("::1".into(), 2400)
        );
        for bad in [
            "",
            "host=h",
            "port=x",
            "port=65535",
            "path=/a,port=1",
            "x=1",
        ] {
            assert!(ShareAddr::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn commands_are_read_whole() {
        let mut two = cmd(0x17e, 0);
        two.extend_from_slice(&cmd(0x17a, 5));
        let mut r = &two[..];
        assert_eq!(read_command(&mut r).unwrap().unwrap(), cmd(0x17e, 0));
        assert_eq!(read_command(&mut r).unwrap().unwrap(), cmd(0x17a, 5));
        assert!(read_command(&mut r).unwrap().is_none());
        // A size field below the header or beyond the limit, or a cut command.
        let mut bad = cmd(0x17e, 0);
        bad[5] = 9;
        assert!(matches!(
            read_command(&mut &bad[..]),
            Err(ClientEnd::BadSize(9))
        ));
        let cut = &cmd(0x17e, 0)[..12];
        assert!(matches!(read_command(&mut &cut[..]), Err(ClientEnd::Io(_))));
    }
}
