//! Classic BPF programs (bpf(4)-style `sock_filter` arrays, no eBPF): the
//! socket filter that lets only client-to-VIP frames of the configured DR
//! services into the ring, and the fanout program that picks a worker by
//! the client's (masked) address. Pure: builds instruction arrays, never
//! touches a socket.

use std::net::IpAddr;

use super::sys::Insn;

// Opcode parts (linux/filter.h, linux/bpf_common.h).
const LD: u16 = 0x00;
const LDX: u16 = 0x01;
const ALU: u16 = 0x04;
const JMP: u16 = 0x05;
const RET: u16 = 0x06;
const MISC: u16 = 0x07;
const W: u16 = 0x00;
const H: u16 = 0x08;
const B: u16 = 0x10;
const ABS: u16 = 0x20;
const IND: u16 = 0x40;
const MSH: u16 = 0xa0;
#[cfg(test)]
const JA: u16 = 0x00;
const JEQ: u16 = 0x10;
const JSET: u16 = 0x40;
const AND: u16 = 0x50;
const MUL: u16 = 0x20;
const RSH: u16 = 0x70;
const XOR: u16 = 0xa0;
const K: u16 = 0x00;
const X: u16 = 0x08;
const RET_A: u16 = 0x10;
const TAX: u16 = 0x00;

/// `SKF_AD_OFF + SKF_AD_PROTOCOL`: loads `skb->protocol`.
const AD_PROTOCOL: u32 = (-0x1000i32) as u32;
/// `SKF_NET_OFF`: loads relative to the network header.
const NET_OFF: i32 = -0x10_0000;

/// Most bytes a program lets through (whole frames).
const ACCEPT: u32 = 0x0004_0000;
/// The kernel's limit on a classic program (`BPF_MAXINSNS`).
pub const MAX_INSNS: usize = 4096;

fn insn(code: u16, jt: u8, jf: u8, k: u32) -> Insn {
    Insn { code, jt, jf, k }
}

/// One virtual service the data plane forwards: (VIP, IP protocol, port;
/// port 0 = every port).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Match {
    /// The VIP.
    pub vip: IpAddr,
    /// IP protocol number (6, 17, 132).
    pub protocol: u8,
    /// Destination port, 0 for all.
    pub port: u16,
}

/// A block of tests that all fall through on success and jump to the
/// block's end ("skip") on failure; closed with `ret ACCEPT`.
struct Block {
    insns: Vec<Insn>,
    /// Indices (in `insns`) of conditional jumps whose false branch skips.
    skips: Vec<usize>,
}

impl Block {
    fn new() -> Self {
        Block {
            insns: Vec::new(),
            skips: Vec::new(),
        }
    }
    fn op(&mut self, code: u16, k: u32) {
        self.insns.push(insn(code, 0, 0, k));
    }
    /// Continue when A == k, else skip the block.
    fn require_eq(&mut self, k: u32) {
        self.skips.push(self.insns.len());
        self.insns.push(insn(JMP | JEQ | K, 0, 0, k));
    }
    /// Continue when A & k == 0, else skip the block.
    fn require_clear(&mut self, k: u32) {
        self.insns.push(insn(JMP | JSET | K, 0, 0, k));
        let at = self.insns.len() - 1;
        // jset's true branch skips; patched like the others below.
        self.skips.push(at | 1 << 31);
    }
    fn finish(mut self) -> Vec<Insn> {
        self.insns.push(insn(RET | K, 0, 0, ACCEPT));
        let end = self.insns.len();
        for s in self.skips {
            let (at, on_true) = (s & !(1 << 31), s & 1 << 31 != 0);
            let distance = u8::try_from(end - at - 1).expect("a block is short");
            if on_true {
                self.insns[at].jt = distance;
            } else {
                self.insns[at].jf = distance;
            }
        }
        self.insns
    }
}

/// The socket filter: accepts unfragmented (or first-fragment-less)
/// IPv4/IPv6 frames to one of `services`, rejects everything else. IPv6
/// frames with extension headers before the transport header are not
/// matched (they reach the host stack, which the firewall rule drops).
/// `None` when the program would exceed the kernel's limit.
pub fn services(services: &[Match]) -> Option<Vec<Insn>> {
    let mut out = Vec::new();
    for m in services {
        let mut b = Block::new();
        match m.vip {
            IpAddr::V4(vip) => {
                b.op(LD | H | ABS, 12);
                b.require_eq(0x0800);
                b.op(LD | W | ABS, 30);
                b.require_eq(u32::from(vip));
                b.op(LD | B | ABS, 23);
                b.require_eq(u32::from(m.protocol));
                // Non-first fragments carry no ports (IPVS defragments;
                // vrlb leaves them to the host, whose firewall drops them).
                b.op(LD | H | ABS, 20);
                b.require_clear(0x1fff);
                if m.port != 0 {
                    b.op(LDX | B | MSH, 14);
                    b.op(LD | H | IND, 16);
                    b.require_eq(u32::from(m.port));
                }
            }
            IpAddr::V6(vip) => {
                b.op(LD | H | ABS, 12);
                b.require_eq(0x86dd);
                for (i, word) in vip.octets().chunks(4).enumerate() {
                    b.op(LD | W | ABS, 38 + 4 * i as u32);
                    b.require_eq(u32::from_be_bytes([word[0], word[1], word[2], word[3]]));
                }
                b.op(LD | B | ABS, 20);
                b.require_eq(u32::from(m.protocol));
                if m.port != 0 {
                    b.op(LD | H | ABS, 56);
                    b.require_eq(u32::from(m.port));
                }
            }
        }
        out.extend(b.finish());
    }
    out.push(insn(RET | K, 0, 0, 0));
    (out.len() <= MAX_INSNS).then_some(out)
}

fn mask(prefix_len: u8, bits: u8) -> u32 {
    let p = u32::from(prefix_len.min(bits));
    if p == 0 { 0 } else { u32::MAX << (32 - p) }
}

/// The fanout program: a hash of the client's address masked to
/// `v4_prefix` (IPv4) or `v6_prefix` (IPv6, at most its first 64 bits
/// count), so every packet of a client (and of every client one
/// persistence template covers) reaches the same worker. The kernel takes
/// the result modulo the number of workers.
pub fn fanout(v4_prefix: u8, v6_prefix: u8) -> Vec<Insn> {
    let net = |off: i32| (NET_OFF + off) as u32;
    let golden = 0x9e37_79b1; // Fibonacci hashing: spreads nearby addresses
    vec![
        /* 0 */ insn(LD | W | ABS, 0, 0, AD_PROTOCOL),
        /* 1 */ insn(JMP | JEQ | K, 0, 5, 0x0800),
        // IPv4: the source address is at 12.
        /* 2 */
        insn(LD | W | ABS, 0, 0, net(12)),
        /* 3 */ insn(ALU | AND | K, 0, 0, mask(v4_prefix, 32)),
        /* 4 */ insn(ALU | MUL | K, 0, 0, golden),
        /* 5 */ insn(ALU | RSH | K, 0, 0, 16),
        /* 6 */ insn(RET | RET_A, 0, 0, 0),
        /* 7 */ insn(JMP | JEQ | K, 0, 9, 0x86dd),
        // IPv6: the source's first two words, at 8 and 12.
        /* 8 */
        insn(LD | W | ABS, 0, 0, net(8)),
        /* 9 */ insn(ALU | AND | K, 0, 0, mask(v6_prefix, 32)),
        /* 10 */ insn(MISC | TAX, 0, 0, 0),
        /* 11 */ insn(LD | W | ABS, 0, 0, net(12)),
        /* 12 */ insn(ALU | AND | K, 0, 0, mask(v6_prefix.saturating_sub(32), 32)),
        /* 13 */ insn(ALU | XOR | X, 0, 0, 0),
        /* 14 */ insn(ALU | MUL | K, 0, 0, golden),
        /* 15 */ insn(ALU | RSH | K, 0, 0, 16),
        /* 16 */ insn(RET | RET_A, 0, 0, 0),
        /* 17 */ insn(RET | K, 0, 0, 0),
    ]
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A classic BPF interpreter for the opcodes these programs use.
    /// `frame` starts at the Ethernet header; `net` is the network header's
    /// offset in it; `protocol` is `skb->protocol`.
    pub(crate) fn run(prog: &[Insn], frame: &[u8], net: usize, protocol: u16) -> u32 {
        let (mut a, mut x, mut pc) = (0u32, 0u32, 0usize);
        let load = |off: u32, size: usize| -> Option<u32> {
            let at = if (NET_OFF..NET_OFF + 0x1_0000).contains(&(off as i32)) {
                net + (off as i32 - NET_OFF) as usize
            } else {
                off as usize
            };
            let b = frame.get(at..at + size)?;
            Some(b.iter().fold(0u32, |acc, v| acc << 8 | u32::from(*v)))
        };
        loop {
            let i = prog[pc];
            pc += 1;
            let size = match i.code & 0x18 {
                W => 4,
                H => 2,
                _ => 1,
            };
            match i.code & 0x07 {
                LD if i.k == AD_PROTOCOL => a = u32::from(protocol),
                LD if i.code & 0xe0 == ABS => match load(i.k, size) {
                    Some(v) => a = v,
                    None => return 0,
                },
                LD if i.code & 0xe0 == IND => match load(x + i.k, size) {
                    Some(v) => a = v,
                    None => return 0,
                },
                LDX => match load(i.k, 1) {
                    Some(v) => x = 4 * (v & 0xf),
                    None => return 0,
                },
                ALU => {
                    let v = if i.code & X != 0 { x } else { i.k };
                    a = match i.code & 0xf0 {
                        AND => a & v,
                        MUL => a.wrapping_mul(v),
                        RSH => a >> v,
                        XOR => a ^ v,
                        op => panic!("alu {op:#x}"),
                    };
                }
                JMP => {
                    let taken = match i.code & 0xf0 {
                        JEQ => a == i.k,
                        JSET => a & i.k != 0,
                        JA => {
                            pc += i.k as usize;
                            continue;
                        }
                        op => panic!("jmp {op:#x}"),
                    };
                    pc += usize::from(if taken { i.jt } else { i.jf });
                }
                RET => return if i.code & RET_A != 0 { a } else { i.k },
                MISC => x = a,
                op => panic!("class {op}"),
            }
        }
    }

    pub(crate) fn tcp4(src: [u8; 4], dst: [u8; 4], dport: u16, frag: u16) -> Vec<u8> {
        let mut f = vec![0u8; 14 + 20 + 20];
        f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        f[14] = 0x45;
        f[20..22].copy_from_slice(&frag.to_be_bytes());
        f[23] = 6;
        f[26..30].copy_from_slice(&src);
        f[30..34].copy_from_slice(&dst);
        f[34..36].copy_from_slice(&40000u16.to_be_bytes());
        f[36..38].copy_from_slice(&dport.to_be_bytes());
        f
    }

    #[test]
    fn the_service_filter_takes_only_vip_port_protocol() {
        let vip: IpAddr = "192.0.2.240".parse().unwrap();
        let prog = services(&[
            Match {
                vip,
                protocol: 6,
                port: 80,
            },
            Match {
                vip: "2001:db8::1".parse().unwrap(),
                protocol: 6,
                port: 0,
            },
        ])
        .unwrap();
        let d = [192, 0, 2, 240];
        let c = [198, 51, 100, 7];
        assert_eq!(run(&prog, &tcp4(c, d, 80, 0), 14, 0x800), ACCEPT);
        assert_eq!(run(&prog, &tcp4(c, d, 81, 0), 14, 0x800), 0);
        assert_eq!(run(&prog, &tcp4(c, [192, 0, 2, 241], 80, 0), 14, 0x800), 0);
        // Don't-fragment set: still taken; a later fragment: not.
        assert_eq!(run(&prog, &tcp4(c, d, 80, 0x4000), 14, 0x800), ACCEPT);
        assert_eq!(run(&prog, &tcp4(c, d, 80, 0x0010), 14, 0x800), 0);
        let mut udp = tcp4(c, d, 80, 0);
        udp[23] = 17;
        assert_eq!(run(&prog, &udp, 14, 0x800), 0);
        // IPv4 with options: the port moves.
        let mut opts = tcp4(c, d, 0, 0);
        opts[14] = 0x46;
        opts.splice(34..34, [1, 1, 1, 1]);
        opts[40..42].copy_from_slice(&80u16.to_be_bytes());
        assert_eq!(run(&prog, &opts, 14, 0x800), ACCEPT);
        // IPv6 to the second VIP, any port.
        let mut v6 = vec![0u8; 14 + 40 + 20];
        v6[12..14].copy_from_slice(&0x86ddu16.to_be_bytes());
        v6[20] = 6;
        let dst: std::net::Ipv6Addr = "2001:db8::1".parse().unwrap();
        v6[38..54].copy_from_slice(&dst.octets());
        v6[56..58].copy_from_slice(&443u16.to_be_bytes());
        assert_eq!(run(&prog, &v6, 14, 0x86dd), ACCEPT);
        v6[53] = 2;
        assert_eq!(run(&prog, &v6, 14, 0x86dd), 0);
        assert_eq!(run(&services(&[]).unwrap(), &v6, 14, 0x86dd), 0);
    }

    #[test]
    fn the_service_filter_refuses_more_than_the_kernel_takes() {
        let many: Vec<Match> = (0..300u32)
            .map(|i| Match {
                vip: IpAddr::V4(std::net::Ipv4Addr::from(0xc000_0200 + i)),
                protocol: 6,
                port: 80,
            })
            .collect();
        assert!(services(&many).is_some());
        let more: Vec<Match> = (0..1000u32)
            .map(|i| Match {
                vip: IpAddr::V4(std::net::Ipv4Addr::from(0xc000_0200 + i)),
                protocol: 6,
                port: 80,
            })
            .collect();
        assert!(services(&more).is_none());
    }

    #[test]
    fn fanout_follows_the_masked_client_address() {
        let prog = fanout(24, 48);
        let d = [192, 0, 2, 240];
        let h = |src| run(&prog, &tcp4(src, d, 80, 0), 14, 0x800);
        // Same /24: same hash, whatever the port or the host part.
        assert_eq!(h([198, 51, 100, 7]), h([198, 51, 100, 200]));
        let spread: std::collections::HashSet<u32> =
            (0..64u8).map(|i| h([198, 51, i, 1]) % 4).collect();
        assert_eq!(spread.len(), 4, "64 client networks use every worker");
        let per_host = fanout(32, 128);
        let h2 = |src| run(&per_host, &tcp4(src, d, 80, 0), 14, 0x800) % 2;
        let ones = (1..=200u8).filter(|i| h2([198, 51, 100, *i]) == 1).count();
        assert!((60..=140).contains(&ones), "{ones} of 200 on worker 1");
        // IPv6: the /48 decides.
        let mut v6 = vec![0u8; 14 + 40];
        v6[22..24].copy_from_slice(&[0x20, 0x01]);
        v6[24..26].copy_from_slice(&[0x0d, 0xb8]);
        let a = run(&prog, &v6, 14, 0x86dd);
        v6[29] = 9; // inside the /48's host part
        assert_eq!(run(&prog, &v6, 14, 0x86dd), a);
        v6[26] = 1; // another /48
        assert_ne!(run(&prog, &v6, 14, 0x86dd), a);
        // Neither IPv4 nor IPv6: worker 0.
        assert_eq!(run(&prog, &v6, 14, 0x0806), 0);
    }
}
