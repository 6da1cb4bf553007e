//! A TPM 2.0 behind the emulated PCR banks (`--tpm`): the few commands IMA needs, marshaled
//! by hand (TPM 2.0 Library Part 3: Startup, GetCapability(TPM_CAP_PCRS), PCR_Read,
//! PCR_Extend with a password session), sent over a swtpm socket (unix or TCP) or a
//! character device (`/dev/tpm0`, `/dev/tpmrm0`). Commands and responses are the raw TPM
//! byte streams; swtpm's data channel and the kernel's TPM devices take them as they are.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use super::hash::{Digest, HashAlgo};

pub(crate) const TPM_ST_NO_SESSIONS: u16 = 0x8001;
const TPM_ST_SESSIONS: u16 = 0x8002;
const TPM_CC_STARTUP: u32 = 0x0000_0144;
const TPM_CC_GET_CAPABILITY: u32 = 0x0000_017a;
const TPM_CC_PCR_READ: u32 = 0x0000_017e;
pub(crate) const TPM_CC_PCR_EXTEND: u32 = 0x0000_0182;
const TPM_SU_CLEAR: u16 = 0x0000;
const TPM_CAP_PCRS: u32 = 0x0000_0005;
const TPM_RS_PW: u32 = 0x4000_0009;
/// TPM_RC_INITIALIZE: Startup was already done (swtpm `--flags startup-clear`).
const TPM_RC_INITIALIZE: u32 = 0x0000_0100;
const TPM_RC_SUCCESS: u32 = 0;
/// PCR select bytes for 24 PCRs.
const PCR_SELECT_SIZE: u8 = 3;
/// swtpm control channel: CMD_INIT (2) with init flags 0, big-endian.
const SWTPM_CMD_INIT: [u8; 8] = [0, 0, 0, 2, 0, 0, 0, 0];
/// Largest response accepted (TPM responses are at most a few KiB).
pub(crate) const MAX_RESPONSE: usize = 64 * 1024;

/// TPM_ALG_ID of a hash algorithm the engine knows.
pub fn alg_id(algo: HashAlgo) -> Option<u16> {
    Some(match algo {
        HashAlgo::Sha1 => 0x0004,
        HashAlgo::Sha256 => 0x000b,
        HashAlgo::Sha384 => 0x000c,
        HashAlgo::Sha512 => 0x000d,
        HashAlgo::Sm3 => 0x0012,
        HashAlgo::Sha3_256 => 0x0027,
        HashAlgo::Sha3_384 => 0x0028,
        HashAlgo::Sha3_512 => 0x0029,
        _ => return None,
    })
}

/// The hash algorithm of a TPM_ALG_ID, if the engine knows it.
pub fn algo_of(id: u16) -> Option<HashAlgo> {
    [
        HashAlgo::Sha1,
        HashAlgo::Sha256,
        HashAlgo::Sha384,
        HashAlgo::Sha512,
        HashAlgo::Sm3,
        HashAlgo::Sha3_256,
        HashAlgo::Sha3_384,
        HashAlgo::Sha3_512,
    ]
    .into_iter()
    .find(|&a| alg_id(a) == Some(id))
}

/// A TPM error: a transport failure or a response code.
#[derive(Debug)]
pub enum TpmError {
    Io(io::Error),
    /// The TPM answered with this TPM_RC.
    Rc(u32),
    /// A response that does not parse.
    Malformed(String),
}

impl TpmError {
    /// The number the kernel puts in its `TPM_error(%d)` audit cause.
    pub fn code(&self) -> i32 {
        match self {
            TpmError::Io(e) => -e.raw_os_error().unwrap_or(libc::EIO),
            TpmError::Rc(rc) => *rc as i32,
            TpmError::Malformed(_) => -libc::EPROTO,
        }
    }
}

impl std::fmt::Display for TpmError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TpmError::Io(e) => write!(f, "TPM I/O: {e}"),
            TpmError::Rc(rc) => write!(f, "TPM response code {rc:#x}"),
            TpmError::Malformed(m) => write!(f, "malformed TPM response: {m}"),
        }
    }
}

impl std::error::Error for TpmError {}

impl From<io::Error> for TpmError {
    fn from(e: io::Error) -> Self {
        TpmError::Io(e)
    }
}

// ---------------------------------------------------------------- marshaling

fn command(tag: u16, cc: u32, body: &[u8]) -> Vec<u8> {
    let mut c = Vec::with_capacity(10 + body.len());
    c.extend_from_slice(&tag.to_be_bytes());
    c.extend_from_slice(&((10 + body.len()) as u32).to_be_bytes());
    c.extend_from_slice(&cc.to_be_bytes());
    c.extend_from_slice(body);
    c
}

/// TPM2_Startup(TPM_SU_CLEAR).
pub fn startup_command() -> Vec<u8> {
    command(
        TPM_ST_NO_SESSIONS,
        TPM_CC_STARTUP,
        &TPM_SU_CLEAR.to_be_bytes(),
    )
}

/// TPM2_GetCapability(TPM_CAP_PCRS, 0, 1): the allocated PCR banks.
pub fn get_pcr_banks_command() -> Vec<u8> {
    let mut body = Vec::with_capacity(12);
    body.extend_from_slice(&TPM_CAP_PCRS.to_be_bytes());
    body.extend_from_slice(&0u32.to_be_bytes());
    body.extend_from_slice(&1u32.to_be_bytes());
    command(TPM_ST_NO_SESSIONS, TPM_CC_GET_CAPABILITY, &body)
}

/// A TPMS_PCR_SELECTION of one PCR.
fn pcr_selection(alg: u16, pcr: u32) -> [u8; 6] {
    let mut sel = [0u8; 6];
    sel[..2].copy_from_slice(&alg.to_be_bytes());
    sel[2] = PCR_SELECT_SIZE;
    if pcr < 24 {
        sel[3 + (pcr / 8) as usize] = 1 << (pcr % 8);
    }
    sel
}

/// TPM2_PCR_Read of one PCR in one bank.
pub fn pcr_read_command(alg: u16, pcr: u32) -> Vec<u8> {
    let mut body = Vec::with_capacity(10);
    body.extend_from_slice(&1u32.to_be_bytes());
    body.extend_from_slice(&pcr_selection(alg, pcr));
    command(TPM_ST_NO_SESSIONS, TPM_CC_PCR_READ, &body)
}

/// TPM2_PCR_Extend of `pcr` with one digest per bank, authorized by an empty password
/// (TPM_RS_PW), as the kernel's `tpm2_pcr_extend` does.
pub fn pcr_extend_command(pcr: u32, digests: &[(u16, &[u8])]) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&pcr.to_be_bytes());
    // TPMS_AUTH_COMMAND: handle, empty nonce, attributes, empty password.
    let auth: [u8; 9] = {
        let mut a = [0u8; 9];
        a[..4].copy_from_slice(&TPM_RS_PW.to_be_bytes());
        a
    };
    body.extend_from_slice(&(auth.len() as u32).to_be_bytes());
    body.extend_from_slice(&auth);
    body.extend_from_slice(&(digests.len() as u32).to_be_bytes());
    for (alg, d) in digests {
        body.extend_from_slice(&alg.to_be_bytes());
        body.extend_from_slice(d);
    }
    command(TPM_ST_SESSIONS, TPM_CC_PCR_EXTEND, &body)
}

/// A response's parameter area after a successful response code.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], TpmError> {
        if self.bytes.len() < n {
            return Err(TpmError::Malformed(format!(
                "{} bytes left, {n} needed",
                self.bytes.len()
            )));
        }
        let (h, t) = self.bytes.split_at(n);
        self.bytes = t;
        Ok(h)
    }
    fn u8(&mut self) -> Result<u8, TpmError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, TpmError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, TpmError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
}

/// Check a response's header: the parameter bytes after it, or the response code.
pub fn response_body(resp: &[u8]) -> Result<&[u8], TpmError> {
    let mut r = Reader { bytes: resp };
    let _tag = r.u16()?;
    let size = r.u32()? as usize;
    let rc = r.u32()?;
    if size != resp.len() {
        return Err(TpmError::Malformed(format!(
            "size field {size}, {} bytes received",
            resp.len()
        )));
    }
    if rc != TPM_RC_SUCCESS {
        return Err(TpmError::Rc(rc));
    }
    Ok(r.bytes)
}

/// TPML_PCR_SELECTION: (alg, select bytes).
fn parse_selections(r: &mut Reader<'_>) -> Result<Vec<(u16, Vec<u8>)>, TpmError> {
    let count = r.u32()?;
    if count > 64 {
        return Err(TpmError::Malformed(format!("{count} PCR selections")));
    }
    let mut out = Vec::new();
    for _ in 0..count {
        let alg = r.u16()?;
        let n = r.u8()? as usize;
        out.push((alg, r.take(n)?.to_vec()));
    }
    Ok(out)
}

/// The banks of a GetCapability(TPM_CAP_PCRS) response with at least one PCR allocated,
/// in TPM order (as `tpm2_get_pcr_allocation` lists them).
pub fn parse_pcr_banks(resp: &[u8]) -> Result<Vec<u16>, TpmError> {
    let mut r = Reader {
        bytes: response_body(resp)?,
    };
    let _more = r.u8()?;
    let cap = r.u32()?;
    if cap != TPM_CAP_PCRS {
        return Err(TpmError::Malformed(format!("capability {cap:#x}")));
    }
    Ok(parse_selections(&mut r)?
        .into_iter()
        .filter(|(_, sel)| sel.iter().any(|&b| b != 0))
        .map(|(alg, _)| alg)
        .collect())
}

/// The one digest of a PCR_Read response for one PCR; `None` when the bank returned none
/// (not allocated).
pub fn parse_pcr_read(resp: &[u8]) -> Result<Option<Vec<u8>>, TpmError> {
    let mut r = Reader {
        bytes: response_body(resp)?,
    };
    let _update_counter = r.u32()?;
    let _selections = parse_selections(&mut r)?;
    let count = r.u32()?;
    if count == 0 {
        return Ok(None);
    }
    let n = r.u16()? as usize;
    Ok(Some(r.take(n)?.to_vec()))
}

// ---------------------------------------------------------------- transport

/// Where commands go. swtpm serves one client connection at a time, so a socket is
/// connected per command (as tpm2-tss's swtpm TCTI does): `tpm2_pcrread` and others can use
/// the TPM between our commands.
enum Transport {
    Unix(std::path::PathBuf),
    Tcp(String, u16),
    Device(File),
}

/// The way to one TPM, shared by the engine's extends and by clients of
/// [`super::tpm_share`]: each command and its whole response pass under one lock, so
/// commands of different users never interleave.
pub struct TpmLink {
    spec: String,
    transport: Mutex<Transport>,
}

impl std::fmt::Debug for TpmLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TpmLink").field("spec", &self.spec).finish()
    }
}

impl TpmLink {
    pub fn spec(&self) -> &str {
        &self.spec
    }

    /// Send one whole command, read its whole response, under the link's lock.
    pub fn transact(&self, cmd: &[u8]) -> Result<Vec<u8>, TpmError> {
        fn exchange(s: &mut (impl Read + Write), cmd: &[u8]) -> Result<Vec<u8>, TpmError> {
            s.write_all(cmd)?;
            s.flush()?;
            let mut head = [0u8; 10];
            s.read_exact(&mut head)?;
            let size = u32::from_be_bytes([head[2], head[3], head[4], head[5]]) as usize;
            if !(10..=MAX_RESPONSE).contains(&size) {
                return Err(TpmError::Malformed(format!("response size {size}")));
            }
            let mut resp = head.to_vec();
            resp.resize(size, 0);
            s.read_exact(&mut resp[10..])?;
            Ok(resp)
        }
        let mut transport = self.transport.lock();
        match &mut *transport {
            Transport::Unix(path) => {
                let mut s = UnixStream::connect(&*path)?;
                s.set_read_timeout(Some(IO_TIMEOUT))?;
                s.set_write_timeout(Some(IO_TIMEOUT))?;
                exchange(&mut s, cmd)
            }
            Transport::Tcp(host, port) => {
                let mut s = TcpStream::connect((host.as_str(), *port))?;
                s.set_read_timeout(Some(IO_TIMEOUT))?;
                s.set_write_timeout(Some(IO_TIMEOUT))?;
                s.set_nodelay(true)?;
                exchange(&mut s, cmd)
            }
            Transport::Device(f) => {
                // A TPM character device takes one write per command and returns the
                // whole response to one read.
                f.write_all(cmd)?;
                let mut buf = vec![0u8; MAX_RESPONSE];
                let n = f.read(&mut buf)?;
                buf.truncate(n);
                Ok(buf)
            }
        }
    }

    /// swtpm's CMD_INIT on its control channel (`PATH.ctrl`, or TCP port + 1).
    fn swtpm_init(&self) -> Result<(), TpmError> {
        fn exchange(s: &mut (impl Read + Write)) -> Result<(), TpmError> {
            s.write_all(&SWTPM_CMD_INIT)?;
            let mut res = [0u8; 4];
            s.read_exact(&mut res)?;
            match u32::from_be_bytes(res) {
                0 => Ok(()),
                rc => Err(TpmError::Rc(rc)),
            }
        }
        match &*self.transport.lock() {
            Transport::Unix(path) => {
                let mut ctrl = path.clone().into_os_string();
                ctrl.push(".ctrl");
                let mut s = UnixStream::connect(ctrl)?;
                s.set_read_timeout(Some(IO_TIMEOUT))?;
                exchange(&mut s)
            }
            Transport::Tcp(host, port) => {
                let mut s = TcpStream::connect((host.as_str(), port.wrapping_add(1)))?;
                s.set_read_timeout(Some(IO_TIMEOUT))?;
                exchange(&mut s)
            }
            Transport::Device(_) => Err(TpmError::Malformed("not a swtpm".to_string())),
        }
    }
}

/// A connection to a TPM.
pub struct Tpm {
    link: Arc<TpmLink>,
    /// Allocated banks (TPM_ALG_ID), in TPM order.
    banks: Vec<u16>,
}

impl std::fmt::Debug for Tpm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tpm")
            .field("spec", &self.link.spec)
            .field("banks", &self.banks)
            .finish()
    }
}

/// Why [`Tpm::open`] fails: the TPM `spec` as given and what went wrong with it. A
/// command-line front end names its option in front of it (`--tpm SPEC: REASON`).
#[derive(Debug, thiserror::Error)]
#[error("TPM {spec}: {reason}")]
pub struct TpmOpenError {
    pub spec: String,
    #[source]
    pub reason: TpmOpenReason,
}

/// What [`TpmOpenError`] found wrong.
#[derive(Debug, thiserror::Error)]
pub enum TpmOpenReason {
    #[error("bad port")]
    BadPort {
        port: String,
        #[source]
        source: std::num::ParseIntError,
    },
    #[error("unknown swtpm option {option:?}")]
    UnknownOption { option: String },
    #[error("unexpected {part:?}")]
    Unexpected { part: String },
    #[error("expected swtpm:PATH, swtpm:path=PATH or swtpm:host=H,port=P")]
    BadSwtpmSpec,
    /// The device could not be opened.
    #[error("{0}")]
    Device(#[source] io::Error),
    #[error("expected swtpm:SOCKET or a TPM device path")]
    UnknownSpec,
    /// TPM2_Startup failed.
    #[error("Startup: {0}")]
    Startup(#[source] TpmError),
    /// Reading the allocated PCR banks failed.
    #[error("GetCapability: {0}")]
    GetCapability(#[source] TpmError),
}

/// How long one command may take before the TPM counts as gone.
const IO_TIMEOUT: Duration = Duration::from_secs(30);

impl Tpm {
    /// Connect to `spec`: `swtpm:PATH`, `swtpm:path=PATH` (unix socket),
    /// `swtpm:host=HOST,port=PORT` (TCP), or a device path (`/dev/tpm0`, `/dev/tpmrm0`).
    /// Sends Startup(CLEAR) (an already started TPM answers TPM_RC_INITIALIZE, which is
    /// fine) and reads the allocated banks.
    pub fn open(spec: &str) -> Result<Tpm, TpmOpenError> {
        let fail = |reason: TpmOpenReason| TpmOpenError {
            spec: spec.to_string(),
            reason,
        };
        let transport = if let Some(rest) = spec.strip_prefix("swtpm:") {
            let mut path = None;
            let mut host = None;
            let mut port = None;
            for part in rest.split(',') {
                match part.split_once('=') {
                    Some(("path", v)) => path = Some(v),
                    Some(("host", v)) => host = Some(v),
                    Some(("port", v)) => {
                        port = Some(v.parse::<u16>().map_err(|source| {
                            fail(TpmOpenReason::BadPort {
                                port: v.to_string(),
                                source,
                            })
                        })?)
                    }
                    Some((k, _)) => {
                        return Err(fail(TpmOpenReason::UnknownOption {
                            option: k.to_string(),
                        }))
                    }
                    None if path.is_none() && !part.is_empty() => path = Some(part),
                    None => {
                        return Err(fail(TpmOpenReason::Unexpected {
                            part: part.to_string(),
                        }))
                    }
                }
            }
            match (path, host, port) {
                (Some(p), None, None) => Transport::Unix(p.into()),
                (None, h, p) if h.is_some() || p.is_some() => {
                    Transport::Tcp(h.unwrap_or("localhost").to_string(), p.unwrap_or(2321))
                }
                _ => return Err(fail(TpmOpenReason::BadSwtpmSpec)),
            }
        } else if spec.starts_with('/') {
            let f = OpenOptions::new()
                .read(true)
                .write(true)
                .open(spec)
                .map_err(|e| fail(TpmOpenReason::Device(e)))?;
            Transport::Device(f)
        } else {
            return Err(fail(TpmOpenReason::UnknownSpec));
        };
        let mut tpm = Tpm {
            link: Arc::new(TpmLink {
                spec: spec.to_string(),
                transport: Mutex::new(transport),
            }),
            banks: Vec::new(),
        };
        let mut started = tpm.startup();
        if started.is_err() && tpm.link.swtpm_init().is_ok() {
            // A swtpm started without `--flags not-need-init` waits for CMD_INIT on its
            // control channel (as the swtpm TCTI sends it) before it runs any command.
            started = tpm.startup();
        }
        started.map_err(|e| fail(TpmOpenReason::Startup(e)))?;
        let resp = tpm
            .transact(&get_pcr_banks_command())
            .map_err(|e| fail(TpmOpenReason::GetCapability(e)))?;
        tpm.banks = parse_pcr_banks(&resp).map_err(|e| fail(TpmOpenReason::GetCapability(e)))?;
        Ok(tpm)
    }

    /// TPM2_Startup(CLEAR); `TPM_RC_INITIALIZE` (already started) is success.
    fn startup(&mut self) -> Result<(), TpmError> {
        let resp = self.transact(&startup_command())?;
        match response_body(&resp) {
            Ok(_) | Err(TpmError::Rc(TPM_RC_INITIALIZE)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    pub fn spec(&self) -> &str {
        &self.link.spec
    }

    /// The link to this TPM, for [`super::tpm_share`]: its commands and the engine's
    /// pass one at a time.
    pub fn link(&self) -> Arc<TpmLink> {
        Arc::clone(&self.link)
    }

    /// Allocated banks the engine can compute, in TPM order. (Banks of unknown algorithms
    /// are not extended: the engine cannot name their digest size.)
    pub fn banks(&self) -> Vec<HashAlgo> {
        self.banks.iter().filter_map(|&id| algo_of(id)).collect()
    }

    /// Send one command, read its whole response.
    fn transact(&mut self, cmd: &[u8]) -> Result<Vec<u8>, TpmError> {
        self.link.transact(cmd)
    }

    /// TPM2_PCR_Read of `pcr` in bank `algo`.
    pub fn pcr_read(&mut self, pcr: u32, algo: HashAlgo) -> Result<Digest, TpmError> {
        let id = alg_id(algo)
            .ok_or_else(|| TpmError::Malformed(format!("no TPM algorithm for {algo}")))?;
        let resp = self.transact(&pcr_read_command(id, pcr))?;
        let bytes = parse_pcr_read(&resp)?
            .ok_or_else(|| TpmError::Malformed(format!("bank {algo} not allocated")))?;
        Digest::from_bytes(algo, &bytes)
            .ok_or_else(|| TpmError::Malformed(format!("{} bytes for {algo}", bytes.len())))
    }

    /// TPM2_PCR_Extend of `pcr` with `digests` (banks not allocated in the TPM skipped).
    pub fn pcr_extend(&mut self, pcr: u32, digests: &[Digest]) -> Result<(), TpmError> {
        let values: Vec<(u16, &[u8])> = digests
            .iter()
            .filter_map(|d| {
                let id = alg_id(d.algo())?;
                self.banks.contains(&id).then_some((id, d.as_bytes()))
            })
            .collect();
        if values.is_empty() {
            return Ok(());
        }
        let resp = self.transact(&pcr_extend_command(pcr, &values))?;
        response_body(&resp).map(|_| ())
    }

    /// `ima_calc_boot_aggregate` (ima_crypto.c): the bank is `ima_hash`'s if the TPM has
    /// it, else sha256, else sha1; the aggregate hashes PCRs 0-7, and 8-9 too for a bank
    /// other than sha1. Returns `None` when the TPM has none of those banks.
    pub fn boot_aggregate(&mut self, ima_hash: HashAlgo) -> Result<Option<Digest>, TpmError> {
        let banks = self.banks();
        let bank = if banks.contains(&ima_hash) {
            ima_hash
        } else if banks.contains(&HashAlgo::Sha256) {
            HashAlgo::Sha256
        } else if banks.contains(&HashAlgo::Sha1) {
            HashAlgo::Sha1
        } else {
            return Ok(None);
        };
        self.aggregate_of(bank).map(Some)
    }

    /// The aggregate over bank `bank` (see [`super::pcr::boot_aggregate_from_pcrs`]).
    pub fn aggregate_of(&mut self, bank: HashAlgo) -> Result<Digest, TpmError> {
        let count = if bank == HashAlgo::Sha1 { 8 } else { 10 };
        let mut pcrs = Vec::with_capacity(count);
        for i in 0..count as u32 {
            pcrs.push(self.pcr_read(i, bank)?);
        }
        Ok(super::pcr::boot_aggregate_from_pcrs(bank, &pcrs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn startup_bytes() {
        assert_eq!(
            startup_command(),
            [0x80, 0x01, 0, 0, 0, 0x0c, 0, 0, 0x01, 0x44, 0, 0]
        );
    }

    #[test]
    fn get_capability_bytes() {
        assert_eq!(
            get_pcr_banks_command(),
            [0x80, 0x01, 0, 0, 0, 0x16, 0, 0, 0x01, 0x7a, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 1]
        );
    }

    #[test]
    fn pcr_read_bytes() {
        // tpm2_pcrread sha256:10 sends the same selection.
        assert_eq!(
            pcr_read_command(0x000b, 10),
            [0x80, 0x01, 0, 0, 0, 0x14, 0, 0, 0x01, 0x7e, 0, 0, 0, 1, 0, 0x0b, 3, 0, 0x04, 0]
        );
        assert_eq!(&pcr_read_command(0x0004, 0)[17..], [0x01, 0, 0]);
        assert_eq!(&pcr_read_command(0x0004, 23)[17..], [0, 0, 0x80]);
    }

    #[test]
    fn pcr_extend_bytes() {
        let sha1 = [0x11u8; 20];
        let sha256 = [0x22u8; 32];
        let cmd = pcr_extend_command(10, &[(0x0004, &sha1), (0x000b, &sha256)]);
        let mut want = vec![0x80, 0x02];
        let size = 10 + 4 + 4 + 9 + 4 + (2 + 20) + (2 + 32);
        want.extend_from_slice(&(size as u32).to_be_bytes());
        want.extend_from_slice(&[0, 0, 0x01, 0x82]);
        want.extend_from_slice(&[0, 0, 0, 10]); // pcrHandle
        want.extend_from_slice(&[0, 0, 0, 9]); // authorizationSize
        want.extend_from_slice(&[0x40, 0, 0, 0x09, 0, 0, 0, 0, 0]); // TPM_RS_PW, no nonce/hmac
        want.extend_from_slice(&[0, 0, 0, 2]);
        want.extend_from_slice(&[0, 0x04]);
        want.extend_from_slice(&sha1);
        want.extend_from_slice(&[0, 0x0b]);
        want.extend_from_slice(&sha256);
        assert_eq!(cmd, want);
        assert_eq!(cmd.len(), size);
    }

    #[test]
    fn parse_capability_response() {
        // sha1 and sha256 allocated (24 PCRs), sha384 present but empty.
        let mut resp = vec![0x80, 0x01, 0, 0, 0, 0, 0, 0, 0, 0];
        resp.push(0); // moreData
        resp.extend_from_slice(&[0, 0, 0, 5]);
        resp.extend_from_slice(&[0, 0, 0, 3]);
        resp.extend_from_slice(&[0, 0x04, 3, 0xff, 0xff, 0xff]);
        resp.extend_from_slice(&[0, 0x0b, 3, 0xff, 0xff, 0xff]);
        resp.extend_from_slice(&[0, 0x0c, 3, 0, 0, 0]);
        let n = resp.len() as u32;
        resp[2..6].copy_from_slice(&n.to_be_bytes());
        assert_eq!(parse_pcr_banks(&resp).unwrap(), [0x0004, 0x000b]);
        // A wrong size field or a short body is an error, not a panic.
        let mut bad = resp.clone();
        bad[5] ^= 1;
        assert!(matches!(parse_pcr_banks(&bad), Err(TpmError::Malformed(_))));
        let mut short = resp[..resp.len() - 2].to_vec();
        let n = short.len() as u32;
        short[2..6].copy_from_slice(&n.to_be_bytes());
        assert!(parse_pcr_banks(&short).is_err());
    }

    #[test]
    fn parse_pcr_read_response_and_error_codes() {
        let digest = [0xabu8; 32];
        let mut resp = vec![0x80, 0x01, 0, 0, 0, 0, 0, 0, 0, 0];
        resp.extend_from_slice(&[0, 0, 0, 7]); // update counter
        resp.extend_from_slice(&[0, 0, 0, 1, 0, 0x0b, 3, 0, 4, 0]);
        resp.extend_from_slice(&[0, 0, 0, 1, 0, 32]);
        resp.extend_from_slice(&digest);
        let n = resp.len() as u32;
        resp[2..6].copy_from_slice(&n.to_be_bytes());
        assert_eq!(parse_pcr_read(&resp).unwrap().unwrap(), digest);
        // TPM_RC_INITIALIZE from Startup.
        let rc = [0x80, 0x01, 0, 0, 0, 10, 0, 0, 0x01, 0x00];
        assert!(matches!(response_body(&rc), Err(TpmError::Rc(0x100))));
        assert_eq!(TpmError::Rc(0x100).code(), 256);
    }

    #[test]
    fn alg_ids_round_trip() {
        for a in [
            HashAlgo::Sha1,
            HashAlgo::Sha256,
            HashAlgo::Sha384,
            HashAlgo::Sha512,
        ] {
            assert_eq!(algo_of(alg_id(a).unwrap()), Some(a));
        }
        assert_eq!(algo_of(0x0001), None);
    }
}
