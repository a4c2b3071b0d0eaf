//! The data plane's only unsafe code: AF_PACKET sockets with a
//! memory-mapped receive ring (TPACKET_V2, packet(7)), a classic BPF
//! filter and fanout program, and batched transmission with `sendmmsg(2)`.
//! Owns the raw file descriptors and the mapping; never parses a frame and
//! never decides anything.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU32, Ordering};

pub use libc::sock_filter as Insn;

/// `ETH_P_ALL` in network byte order, as `socket(2)` and `bind(2)` want it.
const ETH_P_ALL_BE: u16 = (libc::ETH_P_ALL as u16).to_be();

/// One frame handed to the caller by [`RxRing::drain`].
#[derive(Debug)]
pub struct RxFrame<'a> {
    /// The frame from its Ethernet header, `snaplen` bytes.
    pub data: &'a mut [u8],
    /// Length on the wire (`> data.len()` when the ring truncated it).
    pub wire_len: usize,
    /// `sll_pkttype` (`PACKET_HOST`, `PACKET_OUTGOING`, ...).
    pub pkttype: u8,
    /// `TP_STATUS_CSUMNOTREADY`: the transport checksum is unfinished.
    pub csum_not_ready: bool,
}

/// Ring geometry: `frames` slots of `frame_size` bytes in blocks of
/// `block_size` (a multiple of the page size, holding whole frames).
#[derive(Debug, Clone, Copy)]
pub struct RingSize {
    /// Bytes per frame slot (header, address, frame).
    pub frame_size: usize,
    /// Bytes per block.
    pub block_size: usize,
    /// Number of blocks.
    pub blocks: usize,
}

impl RingSize {
    /// 2 KiB frames (a 1500-byte MTU frame with the headers) in 64 KiB
    /// blocks, about `kib` KiB in all (rounded up to whole blocks).
    pub fn from_kib(kib: u32) -> Self {
        const BLOCK: usize = 1 << 16;
        RingSize {
            frame_size: 2048,
            block_size: BLOCK,
            blocks: (kib as usize * 1024).div_ceil(BLOCK).max(1),
        }
    }
}

/// An eventfd(2) that wakes a worker blocked in [`RxRing::wait`]: set on
/// stop and when the event loop changed the worker's shard, so an idle
/// worker sleeps until a frame, a stop or its next expiry instead of
/// waking on a tick.
#[derive(Debug)]
pub struct Waker(OwnedFd);

impl Waker {
    /// A new, unset waker.
    pub fn new() -> io::Result<Waker> {
        // SAFETY: no pointers; the result is checked.
        let fd = cvt(unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) })?;
        // SAFETY: `fd` was just opened and nothing else owns it.
        Ok(Waker(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// Wakes the waiter (now or at its next wait).
    pub fn wake(&self) {
        let one = 1u64.to_ne_bytes();
        // SAFETY: writes 8 valid bytes; a full counter (EAGAIN) is already set.
        let _ = unsafe { libc::write(self.0.as_raw_fd(), one.as_ptr().cast(), one.len()) };
    }

    /// Its descriptor, to register with an event loop.
    pub fn fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }

    /// Resets it (non-blocking).
    pub fn clear(&self) {
        let mut buf = [0u8; 8];
        // SAFETY: reads at most 8 bytes into `buf`.
        let _ = unsafe { libc::read(self.0.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
    }
}

/// `PACKET_FANOUT_FLAG_IGNORE_OUTGOING` (linux/if_packet.h; not in libc).
const PACKET_FANOUT_FLAG_IGNORE_OUTGOING: u32 = 0x4000;

/// An AF_PACKET socket with a TPACKET_V2 receive ring.
#[derive(Debug)]
pub struct RxRing {
    fd: OwnedFd,
    map: *mut u8,
    map_len: usize,
    frame_size: usize,
    frames: usize,
    next: usize,
}

// SAFETY: the mapping is owned by this value alone (no aliasing pointer
// escapes), so moving it to a worker thread is sound.
unsafe impl Send for RxRing {}

fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn setsockopt<T>(fd: RawFd, level: libc::c_int, name: libc::c_int, value: &T) -> io::Result<()> {
    // SAFETY: `value` points to a live `T` of the size passed.
    cvt(unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (value as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    })
    .map(|_| ())
}

fn packet_socket(protocol_be: u16) -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2); the result is checked before it is owned.
    let fd = cvt(unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::c_int::from(protocol_be),
        )
    })?;
    // SAFETY: `fd` was just returned by socket(2) and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn link_addr(ifindex: u32, protocol_be: u16) -> libc::sockaddr_ll {
    // SAFETY: sockaddr_ll is plain data; all-zero is a valid value.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = protocol_be;
    sll.sll_ifindex = ifindex as i32;
    sll.sll_halen = 6;
    sll
}

fn bind(fd: RawFd, ifindex: u32, protocol_be: u16) -> io::Result<()> {
    let sll = link_addr(ifindex, protocol_be);
    // SAFETY: `sll` is a valid sockaddr_ll of the size passed.
    cvt(unsafe {
        libc::bind(
            fd,
            (&sll as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    })
    .map(|_| ())
}

fn fprog(program: &[Insn]) -> libc::sock_fprog {
    libc::sock_fprog {
        len: program.len() as u16,
        filter: program.as_ptr().cast_mut(),
    }
}

/// The TPACKET_V2 header length rounded up (`TPACKET_ALIGN`): the
/// `sockaddr_ll` follows it.
const HDR_LEN: usize = (std::mem::size_of::<libc::tpacket2_hdr>() + libc::TPACKET_ALIGNMENT - 1)
    & !(libc::TPACKET_ALIGNMENT - 1);

impl RxRing {
    /// Opens a ring on `ifindex` that receives what `filter` accepts,
    /// ignores this host's own transmissions, and (with `fanout`) joins
    /// fanout group `id`, where `program` picks the member.
    pub fn open(
        ifindex: u32,
        size: RingSize,
        filter: &[Insn],
        fanout: Option<(u16, &[Insn])>,
    ) -> io::Result<RxRing> {
        if size.frame_size % libc::TPACKET_ALIGNMENT != 0
            || size.block_size % size.frame_size != 0
            || filter.is_empty()
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "ring geometry or filter",
            ));
        }
        // Protocol 0: nothing is queued until bind() names ETH_P_ALL, so
        // no frame arrives before the filter is in place.
        let fd = packet_socket(0)?;
        let raw = fd.as_raw_fd();
        setsockopt(
            raw,
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            &fprog(filter),
        )?;
        let version: libc::c_int = libc::tpacket_versions::TPACKET_V2 as libc::c_int;
        setsockopt(raw, libc::SOL_PACKET, libc::PACKET_VERSION, &version)?;
        // Linux >= 4.20; older kernels are covered by the PACKET_OUTGOING
        // check in the worker.
        let _ = setsockopt(raw, libc::SOL_PACKET, libc::PACKET_IGNORE_OUTGOING, &1i32);
        let frames = size.block_size / size.frame_size * size.blocks;
        let req = libc::tpacket_req {
            tp_block_size: size.block_size as u32,
            tp_block_nr: size.blocks as u32,
            tp_frame_size: size.frame_size as u32,
            tp_frame_nr: frames as u32,
        };
        setsockopt(raw, libc::SOL_PACKET, libc::PACKET_RX_RING, &req)?;
        let map_len = size.block_size * size.blocks;
        // SAFETY: maps the ring the kernel just allocated for this socket;
        // the result is checked against MAP_FAILED.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                raw,
                0,
            )
        };
        if map == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ring = RxRing {
            fd,
            map: map.cast(),
            map_len,
            frame_size: size.frame_size,
            frames,
            next: 0,
        };
        bind(raw, ifindex, ETH_P_ALL_BE)?;
        if let Some((id, program)) = fanout {
            let arg: u32 = u32::from(id) | (libc::PACKET_FANOUT_CBPF << 16);
            // A fanout group has its own hook, which ignores the sockets'
            // PACKET_IGNORE_OUTGOING; the group's flag (Linux >= 6.9) does
            // the same. Older kernels refuse it: join without (the workers
            // skip outgoing frames).
            let ignore = arg | (PACKET_FANOUT_FLAG_IGNORE_OUTGOING << 16);
            if setsockopt(raw, libc::SOL_PACKET, libc::PACKET_FANOUT, &ignore).is_err() {
                setsockopt(raw, libc::SOL_PACKET, libc::PACKET_FANOUT, &arg)?;
            }
            setsockopt(
                raw,
                libc::SOL_PACKET,
                libc::PACKET_FANOUT_DATA,
                &fprog(program),
            )?;
        }
        Ok(ring)
    }

    /// The descriptor, to wait on.
    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Hands at most `max` ready frames to `f`, in ring order, and gives
    /// each slot back to the kernel after `f` returns. Returns how many.
    pub fn drain(&mut self, max: usize, mut f: impl FnMut(RxFrame<'_>)) -> usize {
        let mut n = 0;
        while n < max {
            // SAFETY: `next < frames`, so the slot lies inside the mapping.
            let slot = unsafe { self.map.add(self.next * self.frame_size) };
            // SAFETY: tp_status is the slot's first, 16-byte aligned u32,
            // shared with the kernel, so it is read and written atomically.
            let status = unsafe { AtomicU32::from_ptr(slot.cast::<u32>()) };
            let st = status.load(Ordering::Acquire);
            if st & libc::TP_STATUS_USER == 0 {
                break;
            }
            // SAFETY: the kernel wrote a whole tpacket2_hdr at the slot's
            // start and handed the slot to us (TP_STATUS_USER).
            let hdr = unsafe { slot.cast::<libc::tpacket2_hdr>().read() };
            // SAFETY: the sockaddr_ll follows the aligned header in the slot.
            let sll = unsafe {
                slot.add(HDR_LEN)
                    .cast::<libc::sockaddr_ll>()
                    .read_unaligned()
            };
            let start = usize::from(hdr.tp_mac);
            let len = hdr.tp_snaplen as usize;
            if start + len <= self.frame_size {
                // SAFETY: [start, start+len) lies in this slot, which the
                // kernel does not touch until we set TP_STATUS_KERNEL below.
                let data = unsafe { std::slice::from_raw_parts_mut(slot.add(start), len) };
                f(RxFrame {
                    data,
                    wire_len: hdr.tp_len as usize,
                    pkttype: sll.sll_pkttype,
                    csum_not_ready: st & libc::TP_STATUS_CSUMNOTREADY != 0,
                });
            }
            status.store(libc::TP_STATUS_KERNEL, Ordering::Release);
            self.next = (self.next + 1) % self.frames;
            n += 1;
        }
        n
    }

    /// A handle that changes this ring's filter (and its fanout group's
    /// program) from another thread.
    pub fn filter_handle(&self) -> io::Result<FilterHandle> {
        Ok(FilterHandle(self.fd.try_clone()?))
    }

    /// Waits until a frame is ready or `timeout_ms` passes.
    pub fn wait(&self, waker: &Waker, timeout_ms: i32) -> io::Result<()> {
        let mut pfds = [
            libc::pollfd {
                fd: self.fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: waker.0.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: two valid pollfds.
        match cvt(unsafe { libc::poll(pfds.as_mut_ptr(), 2, timeout_ms) }) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(()),
            r => {
                if pfds[1].revents & libc::POLLIN != 0 {
                    waker.clear();
                }
                // A pending socket error (ENETDOWN: the interface was down
                // at bind, or went down since; af_packet.c) makes poll
                // return POLLERR at once until it is read: take it, or the
                // worker spins.
                if pfds[0].revents & libc::POLLERR != 0
                    && let Some(e) = socket2::SockRef::from(&self.fd).take_error()?
                {
                    return Err(e);
                }
                r.map(|_| ())
            }
        }
    }

    /// Frames the kernel dropped because the ring was full, since the
    /// last call (`PACKET_STATISTICS`).
    pub fn take_drops(&self) -> u64 {
        let mut stats = libc::tpacket_stats {
            tp_packets: 0,
            tp_drops: 0,
        };
        let mut len = std::mem::size_of::<libc::tpacket_stats>() as libc::socklen_t;
        // SAFETY: `stats` and `len` are valid for the kernel to fill.
        let r = unsafe {
            libc::getsockopt(
                self.fd(),
                libc::SOL_PACKET,
                libc::PACKET_STATISTICS,
                (&mut stats as *mut libc::tpacket_stats).cast(),
                &mut len,
            )
        };
        if r < 0 { 0 } else { u64::from(stats.tp_drops) }
    }
}

impl Drop for RxRing {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `open`; no frame
        // borrow outlives `drain`.
        unsafe {
            libc::munmap(self.map.cast(), self.map_len);
        }
    }
}

/// A duplicate of a ring's descriptor, to replace its programs while a
/// worker reads it.
#[derive(Debug)]
pub struct FilterHandle(OwnedFd);

impl FilterHandle {
    /// Replaces the socket filter (atomically, `SO_ATTACH_FILTER`).
    pub fn set_filter(&self, program: &[Insn]) -> io::Result<()> {
        setsockopt(
            self.0.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            &fprog(program),
        )
    }

    /// Replaces the fanout group's program (`PACKET_FANOUT_DATA`).
    pub fn set_fanout(&self, program: &[Insn]) -> io::Result<()> {
        setsockopt(
            self.0.as_raw_fd(),
            libc::SOL_PACKET,
            libc::PACKET_FANOUT_DATA,
            &fprog(program),
        )
    }
}

/// An AF_PACKET socket that only transmits (protocol 0: receives nothing).
#[derive(Debug)]
pub struct TxSocket {
    fd: OwnedFd,
    ifindex: u32,
}

impl TxSocket {
    /// A sender on `ifindex`.
    pub fn open(ifindex: u32) -> io::Result<TxSocket> {
        let fd = packet_socket(0)?;
        bind(fd.as_raw_fd(), ifindex, 0)?;
        Ok(TxSocket { fd, ifindex })
    }

    /// Sends whole Ethernet frames, as many as one `sendmmsg(2)` takes.
    /// Returns how many were sent.
    pub fn send_batch(&self, frames: &[&[u8]]) -> io::Result<usize> {
        if frames.is_empty() {
            return Ok(0);
        }
        let mut sll = link_addr(self.ifindex, 0);
        let mut iovs: Vec<libc::iovec> = frames
            .iter()
            .map(|f| libc::iovec {
                iov_base: f.as_ptr().cast_mut().cast(),
                iov_len: f.len(),
            })
            .collect();
        let mut msgs: Vec<libc::mmsghdr> = iovs
            .iter_mut()
            .map(|iov| {
                // SAFETY: msghdr is plain data; all-zero is valid.
                let mut hdr: libc::msghdr = unsafe { std::mem::zeroed() };
                hdr.msg_name = (&mut sll as *mut libc::sockaddr_ll).cast();
                hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_ll>() as u32;
                hdr.msg_iov = iov;
                hdr.msg_iovlen = 1;
                libc::mmsghdr {
                    msg_hdr: hdr,
                    msg_len: 0,
                }
            })
            .collect();
        // SAFETY: every mmsghdr points at a live iovec over a live frame
        // and at `sll`, all outliving the call; the kernel only reads them.
        let sent = cvt(unsafe {
            libc::sendmmsg(self.fd.as_raw_fd(), msgs.as_mut_ptr(), msgs.len() as u32, 0)
        })?;
        Ok(sent as usize)
    }
}
