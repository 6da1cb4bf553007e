//! FUSE over io_uring (Linux 6.14+, with `fuse.enable_uring=1`; imafs patch, see
//! IMAFS-PATCH.md).
//!
//! The kernel keeps one request queue per possible CPU and queues each request on the
//! queue of the CPU its caller runs on. One worker per queue, pinned to that CPU, registers
//! ring entries (a header buffer and a payload buffer each) and answers each request by
//! committing the reply and fetching the next request in one `io_uring_enter`. Caller and
//! worker thus meet on one CPU: no cross-CPU wake-up per request, which is what a
//! synchronous FUSE request costs most on a virtual machine.
//!
//! Requests are reassembled into the `/dev/fuse` layout and dispatched as usual; replies are
//! captured (`ReplySender::Ring`) and copied into the entry. Interrupts, forgets and
//! notifications keep using `/dev/fuse`, so the session's ordinary workers keep running.

use std::io;
use std::io::IoSlice;
use std::mem::ManuallyDrop;
use std::os::fd::AsFd;
use std::os::fd::AsRawFd;
use std::sync::Arc;

use io_uring::IoUring;
use io_uring::cqueue;
use io_uring::opcode;
use io_uring::squeue;
use io_uring::types;
use log::debug;
use log::error;
use log::info;
use log::warn;
use parking_lot::Condvar;
use parking_lot::Mutex;

use crate::Filesystem;
use crate::channel::ChannelSender;
use crate::request::RequestWithSender;
use crate::session::SessionEventLoop;

/// `FUSE_IO_URING_CMD_REGISTER` and `FUSE_IO_URING_CMD_COMMIT_AND_FETCH` (uapi fuse.h).
const CMD_REGISTER: u32 = 1;
const CMD_COMMIT_AND_FETCH: u32 = 2;
/// Sizes of `struct fuse_uring_req_header`'s parts (uapi fuse.h).
const IN_OUT_HEADER_SZ: usize = 128;
const OP_IN_OUT_SZ: usize = 128;
/// `struct fuse_in_header` / `struct fuse_out_header`.
const IN_HEADER_SZ: usize = 40;
const OUT_HEADER_SZ: usize = 16;
const FUSE_RELEASE: u32 = crate::ll::fuse_abi::fuse_opcode::FUSE_RELEASE as u32;
/// `FUSE_MIN_READ_BUFFER`.
const MIN_PAYLOAD: usize = 8192;
/// Ring entries per queue: requests of one CPU in flight at once.
const QUEUE_DEPTH: usize = 4;
/// How often in a row an entry whose commit failed is registered again.
const MAX_REREGISTER: u32 = 3;

/// `struct fuse_uring_req_header`.
#[repr(C)]
struct ReqHeader {
    in_out: [u8; IN_OUT_HEADER_SZ],
    op_in: [u8; OP_IN_OUT_SZ],
    /// `struct fuse_uring_ent_in_out`: flags, commit_id, payload_sz, padding, reserved.
    flags: u64,
    commit_id: u64,
    payload_sz: u32,
    padding: u32,
    reserved: u64,
}

/// The payload buffer size the kernel requires of every entry (`max_payload_sz`).
pub(crate) fn payload_size(max_write: u32) -> usize {
    let page = 4096;
    let max_write = max_write as usize;
    MIN_PAYLOAD.max(max_write.div_ceil(page) * page)
}

/// The number of possible CPUs: the kernel makes that many queues and uses the ring only
/// once every one of them has an entry.
pub(crate) fn possible_cpus() -> io::Result<usize> {
    let text = std::fs::read_to_string("/sys/devices/system/cpu/possible")?;
    let mut n = 0;
    for range in text.trim().split(',') {
        let (lo, hi) = range.split_once('-').unwrap_or((range, range));
        let lo: usize = lo.parse().map_err(io::Error::other)?;
        let hi: usize = hi.parse().map_err(io::Error::other)?;
        n = n.max(hi + 1).max(lo + 1);
    }
    Ok(n)
}

/// A reply captured for a ring entry.
#[derive(Debug, Default)]
pub(crate) struct RingReplySlot {
    reply: Mutex<Option<Vec<u8>>>,
    sent: Condvar,
}

/// Where replies to a ring request go: the slot, and `/dev/fuse` for backing ids.
#[derive(Debug, Clone)]
pub(crate) struct RingReply {
    pub(crate) slot: Arc<RingReplySlot>,
    pub(crate) ch: ChannelSender,
}

impl RingReply {
    pub(crate) fn send(&self, data: &[IoSlice<'_>]) -> io::Result<()> {
        let mut bytes = Vec::with_capacity(data.iter().map(|d| d.len()).sum());
        for d in data {
            bytes.extend_from_slice(d);
        }
        *self.slot.reply.lock() = Some(bytes);
        self.slot.sent.notify_all();
        Ok(())
    }
}

impl RingReplySlot {
    /// The reply, waiting for it when a handler answers from another thread later.
    fn take(&self) -> Vec<u8> {
        let mut reply = self.reply.lock();
        loop {
            if let Some(r) = reply.take() {
                return r;
            }
            self.sent.wait(&mut reply);
        }
    }
}

/// One ring entry: buffers the kernel reads and writes while the entry is registered.
struct Entry {
    header: Box<ReqHeader>,
    payload: Vec<u8>,
    iov: Box<[libc::iovec; 2]>,
}

impl Entry {
    fn new(payload_size: usize) -> Entry {
        // SAFETY: ReqHeader is plain integers and byte arrays; all zeroes is a valid value.
        let mut header: Box<ReqHeader> = Box::new(unsafe { std::mem::zeroed() });
        let mut payload = vec![0u8; payload_size];
        let iov = Box::new([
            libc::iovec {
                iov_base: (&mut *header as *mut ReqHeader).cast(),
                iov_len: size_of::<ReqHeader>(),
            },
            libc::iovec {
                iov_base: payload.as_mut_ptr().cast(),
                iov_len: payload.len(),
            },
        ]);
        Entry {
            header,
            payload,
            iov,
        }
    }

    /// The request's number and opcode (`struct fuse_in_header`: len, opcode, unique).
    fn unique_and_opcode(&self) -> (u64, u32) {
        let h = &self.header.in_out;
        let opcode = u32::from_ne_bytes(h[4..8].try_into().unwrap_or_default());
        let unique = u64::from_ne_bytes(h[8..16].try_into().unwrap_or_default());
        (unique, opcode)
    }

    /// The request in `/dev/fuse` layout: `fuse_in_header`, the operation's header (the
    /// kernel's first argument, in `op_in`), then the payload.
    fn request(&self) -> Result<Vec<u8>, String> {
        let h = &self.header;
        let len = u32::from_ne_bytes(h.in_out[0..4].try_into().unwrap_or_default()) as usize;
        let payload_sz = h.payload_sz as usize;
        let op_len = len
            .checked_sub(IN_HEADER_SZ + payload_sz)
            .filter(|n| *n <= OP_IN_OUT_SZ && payload_sz <= self.payload.len())
            .ok_or_else(|| format!("request length {len}, payload {payload_sz}"))?;
        let mut buf = Vec::with_capacity(len);
        buf.extend_from_slice(&h.in_out[..IN_HEADER_SZ]);
        buf.extend_from_slice(&h.op_in[..op_len]);
        buf.extend_from_slice(&self.payload[..payload_sz]);
        Ok(buf)
    }

    /// Store `reply` (`fuse_out_header` and body) for the commit.
    fn set_reply(&mut self, reply: &[u8]) -> Result<(), String> {
        if reply.len() < OUT_HEADER_SZ || reply.len() - OUT_HEADER_SZ > self.payload.len() {
            return Err(format!("reply of {} bytes", reply.len()));
        }
        let (out, body) = reply.split_at(OUT_HEADER_SZ);
        self.header.in_out[..OUT_HEADER_SZ].copy_from_slice(out);
        self.payload[..body.len()].copy_from_slice(body);
        self.header.payload_sz = body.len() as u32;
        Ok(())
    }

    /// An error reply to the request in the entry (when it could not be read).
    fn set_error(&mut self, errno: i32) {
        let unique = &self.header.in_out[8..16];
        let mut out = [0u8; OUT_HEADER_SZ];
        out[0..4].copy_from_slice(&(OUT_HEADER_SZ as u32).to_ne_bytes());
        out[4..8].copy_from_slice(&(-errno).to_ne_bytes());
        out[8..16].copy_from_slice(unique);
        self.header.in_out[..OUT_HEADER_SZ].copy_from_slice(&out);
        self.header.payload_sz = 0;
    }
}

/// The 128-byte SQE of a FUSE ring command on `fd` for queue `qid`.
fn command(fd: i32, cmd_op: u32, qid: u16, commit_id: u64, iov: Option<&[libc::iovec; 2]>) -> squeue::Entry128 {
    // struct fuse_uring_cmd_req: flags, commit_id, qid, padding.
    let mut cmd = [0u8; 80];
    cmd[8..16].copy_from_slice(&commit_id.to_ne_bytes());
    cmd[16..18].copy_from_slice(&qid.to_ne_bytes());
    let mut op = opcode::UringCmd80::new(types::Fd(fd), cmd_op).cmd(cmd);
    if let Some(iov) = iov {
        op = op.addr(Some(iov.as_ptr() as u64));
    }
    let entry = op.build();
    if iov.is_none() {
        return entry;
    }
    // The register command names its two buffers by `sqe->addr` and `sqe->len` (2), and
    // the io-uring crate has no setter for `len` on this opcode.
    // SAFETY: Entry128 is #[repr(C)], 128 bytes: a struct io_uring_sqe (64 bytes, `len` a
    // u32 at offset 24) followed by 64 command bytes; every bit pattern is a valid value.
    let mut raw: [u8; 128] = unsafe { std::mem::transmute(entry) };
    raw[24..28].copy_from_slice(&2u32.to_ne_bytes());
    // SAFETY: as above, converting back the same 128 bytes.
    unsafe { std::mem::transmute::<[u8; 128], squeue::Entry128>(raw) }
}

/// Pin the calling thread to `cpu` (best effort: an offline CPU's queue stays unpinned).
fn pin_to(cpu: usize) {
    // SAFETY: cpu_set_t is a plain bit array; CPU_ZERO/CPU_SET write within it, and
    // sched_setaffinity reads size_of::<cpu_set_t>() bytes of it for the calling thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_ZERO(&mut set);
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set) != 0 {
            debug!("uring queue {cpu}: not pinned: {}", io::Error::last_os_error());
        }
    }
}

type Ring = IoUring<squeue::Entry128, cqueue::Entry>;

fn new_ring() -> io::Result<Ring> {
    IoUring::builder().build((QUEUE_DEPTH * 2) as u32)
}

/// Whether this process can make rings: io_uring may be off (`kernel.io_uring_disabled`) or
/// refused by a seccomp profile (container runtimes' defaults). Asked before INIT requests
/// FUSE over io_uring, because once the kernel grants it, every request waits until each
/// CPU's queue is registered (dev.c: `fuse_block_alloc`, `fuse_uring_ready`).
pub(crate) fn available() -> bool {
    match new_ring() {
        Ok(_) => true,
        Err(e) => {
            info!("no io_uring here ({e}): requests go through /dev/fuse");
            false
        }
    }
}

/// Make the kernel drop FUSE over io_uring for the connection on `fd`: a register it
/// refuses (a queue id past its last) clears the connection's io_uring and wakes the
/// requests waiting for the rings, which then go through `/dev/fuse` (dev_uring.c:
/// `fuse_uring_cmd`, `fuse_uring_register`).
fn give_up(ring: &mut Ring, fd: i32) -> io::Result<()> {
    let sqe = command(fd, CMD_REGISTER, u16::MAX, 0, None).user_data(u64::MAX);
    // SAFETY: the command names no buffer (the kernel refuses the queue id first).
    unsafe { ring.submission().push(&sqe) }.map_err(io::Error::other)?;
    ring.submit_and_wait(1)?;
    let res = ring.completion().next().map(|c| c.result());
    info!("uring: the kernel switched the connection back to /dev/fuse ({res:?})");
    Ok(())
}

/// Serve queue `qid` with `ring` until the connection ends.
fn serve_queue<FS: Filesystem>(
    qid: u16,
    mut ring: Ring,
    se: SessionEventLoop<FS>,
    payload_size: usize,
) -> io::Result<()> {
    pin_to(qid as usize);
    let fd = se.ch.as_fd().as_raw_fd();
    // The kernel keeps pointers to these buffers for as long as the connection lives, and
    // may copy a request into one in this thread's context until the thread is gone: they
    // are never freed (QUEUE_DEPTH payloads per CPU, once per mount).
    let mut entries: ManuallyDrop<Vec<Entry>> =
        ManuallyDrop::new((0..QUEUE_DEPTH).map(|_| Entry::new(payload_size)).collect());
    for (i, e) in entries.iter().enumerate() {
        let sqe = command(fd, CMD_REGISTER, qid, 0, Some(&e.iov)).user_data(i as u64);
        // SAFETY: the entry's buffers and the iovec array naming them are never freed
        // (`entries` is not dropped), so they stay valid for whatever the kernel writes.
        unsafe { ring.submission().push(&sqe) }.map_err(io::Error::other)?;
    }
    ring.submit()?;
    let slot = Arc::new(RingReplySlot::default());
    let reply_to = RingReply {
        slot: slot.clone(),
        ch: se.ch.sender(),
    };
    // Whether a request arrived (the registration was accepted).
    let mut served = false;
    // Consecutive rejected commits per entry.
    let mut failures = vec![0u32; entries.len()];
    loop {
        match ring.submit_and_wait(1) {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
            Err(e) => return Err(e),
        }
        let mut done: Vec<(usize, i32)> = ring
            .completion()
            .map(|c| (c.user_data() as usize, c.result()))
            .collect();
        // Every request of the batch is noted before any is handled, and they are handled
        // in the kernel's order: an open waiting for an earlier release (in_flight.rs) never
        // waits for one this worker has read and not yet handled.
        let numbered = |i: usize| entries.get(i).map(|e| e.unique_and_opcode());
        done.sort_by_key(|&(i, res)| (res < 0, numbered(i).map(|(u, _)| u)));
        if let Some(f) = &se.in_flight {
            for &(i, res) in &done {
                if let (true, Some((unique, opcode))) = (res >= 0, numbered(i)) {
                    f.received(unique, opcode == FUSE_RELEASE, true);
                }
            }
        }
        for (i, res) in done {
            if res < 0 {
                let err = io::Error::from_raw_os_error(-res);
                if matches!(-res, libc::ENOTCONN | libc::ECONNABORTED | libc::ECANCELED) {
                    debug!("uring queue {qid}: connection ended");
                } else if !served {
                    // The kernel refused the registration: it turns io_uring off for the
                    // connection and serves everything through /dev/fuse.
                    warn!("uring queue {qid}: registration refused ({err}); requests go through /dev/fuse");
                } else {
                    // A commit the kernel rejected: the entry left the queue. Register it
                    // again so that the CPU's requests keep a ring entry to arrive in.
                    let tries = failures.get_mut(i).map(|n| {
                        *n += 1;
                        *n
                    });
                    if tries.unwrap_or(u32::MAX) > MAX_REREGISTER {
                        error!("uring queue {qid}: entry {i}: {err}; entry dropped");
                        continue;
                    }
                    error!("uring queue {qid}: entry {i}: {err}; registering it again");
                    if let Some(e) = entries.get(i) {
                        let sqe = command(fd, CMD_REGISTER, qid, 0, Some(&e.iov)).user_data(i as u64);
                        // SAFETY: the buffers are never freed (see `entries`).
                        unsafe { ring.submission().push(&sqe) }.map_err(io::Error::other)?;
                    }
                    continue;
                }
                return Ok(());
            }
            if !served {
                info!("uring queue {qid}: serving requests");
                served = true;
            }
            if let Some(n) = failures.get_mut(i) {
                *n = 0;
            }
            let Some(e) = entries.get_mut(i) else {
                warn!("uring queue {qid}: completion for unknown entry {i}");
                continue;
            };
            let commit_id = e.header.commit_id;
            let (unique, opcode) = e.unique_and_opcode();
            match e.request() {
                Ok(buf) => match RequestWithSender::new_ring(reply_to.clone(), &buf) {
                    Some(req) => {
                        req.dispatch(&se);
                        let reply = slot.take();
                        if let Err(why) = e.set_reply(&reply) {
                            error!("uring queue {qid}: cannot commit {why}");
                            e.set_error(libc::EIO);
                        }
                    }
                    None => e.set_error(libc::EIO),
                },
                Err(why) => {
                    error!("uring queue {qid}: malformed request: {why}");
                    e.set_error(libc::EIO);
                }
            }
            // Handled, or answered EIO: either way no longer in flight.
            if let (Some(f), FUSE_RELEASE) = (&se.in_flight, opcode) {
                f.end(unique);
            }
            let sqe = command(fd, CMD_COMMIT_AND_FETCH, qid, commit_id, None).user_data(i as u64);
            // SAFETY: as for the register commands: the buffers are never freed.
            unsafe { ring.submission().push(&sqe) }.map_err(io::Error::other)?;
        }
    }
}

/// Start one worker per queue; `make_loop` gives each its event-loop state. Every ring is
/// made first: if one cannot be, no queue is registered and the kernel is told to serve the
/// connection through `/dev/fuse` (it would otherwise hold every request until all queues
/// are registered).
pub(crate) fn spawn_queues<FS: Filesystem>(
    fd: i32,
    payload_size: usize,
    mut make_loop: impl FnMut(u16) -> io::Result<SessionEventLoop<FS>>,
) -> io::Result<Vec<std::thread::JoinHandle<io::Result<()>>>> {
    let cpus = possible_cpus()?;
    let mut rings = Vec::with_capacity(cpus);
    for qid in 0..cpus {
        match new_ring() {
            Ok(ring) => rings.push(ring),
            Err(e) => {
                warn!("uring queue {qid}: no io_uring ({e}); requests go through /dev/fuse");
                match rings.first_mut() {
                    Some(ring) => give_up(ring, fd)?,
                    None => {
                        // Not one ring: the probe before INIT passed moments ago, so this is
                        // a transient failure; retry once, or the connection stays blocked.
                        give_up(&mut new_ring()?, fd)?;
                    }
                }
                return Ok(Vec::new());
            }
        }
    }
    let mut threads = Vec::new();
    for (qid, ring) in rings.into_iter().enumerate() {
        let qid = u16::try_from(qid).map_err(io::Error::other)?;
        let spawned = make_loop(qid).and_then(|se| {
            std::thread::Builder::new()
                .name(format!("fuser-uring-{qid}"))
                .spawn(move || serve_queue(qid, ring, se, payload_size))
        });
        match spawned {
            Ok(t) => threads.push(t),
            Err(e) => {
                // The queues started so far cannot make the ring ready without this one.
                warn!("uring queue {qid}: {e}; requests go through /dev/fuse");
                give_up(&mut new_ring()?, fd)?;
                break;
            }
        }
    }
    Ok(threads)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_layout_is_the_kernels() {
        assert_eq!(size_of::<ReqHeader>(), 128 + 128 + 32);
        assert_eq!(payload_size(1 << 20), 1 << 20);
        assert_eq!(payload_size(100), MIN_PAYLOAD);
    }
}
