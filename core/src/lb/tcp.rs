//! TCP state tracking as a direct-routing director sees it: input only
//! (client to server), with IPVS's `INPUT-ONLY` table of ip_vs_proto_tcp.c
//! (the non-`secure_tcp` one), its default timeouts, and its notion of
//! which states count as active connections. Never looks at sequence
//! numbers: IPVS does not either.

/// IPVS TCP connection states (`IP_VS_TCP_S_*`), in the kernel's order.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[repr(u8)]
pub enum TcpState {
    /// No packet seen yet.
    None = 0,
    /// ESTABLISHED.
    Established,
    /// SYN_SENT.
    SynSent,
    /// SYN_RECV.
    SynRecv,
    /// FIN_WAIT.
    FinWait,
    /// TIME_WAIT.
    TimeWait,
    /// CLOSE.
    Close,
    /// CLOSE_WAIT.
    CloseWait,
    /// LAST_ACK.
    LastAck,
    /// LISTEN.
    Listen,
    /// SYNACK.
    SynAck,
}

const STATES: [TcpState; 11] = [
    TcpState::None,
    TcpState::Established,
    TcpState::SynSent,
    TcpState::SynRecv,
    TcpState::FinWait,
    TcpState::TimeWait,
    TcpState::Close,
    TcpState::CloseWait,
    TcpState::LastAck,
    TcpState::Listen,
    TcpState::SynAck,
];

impl TcpState {
    /// The state stored as `n` (unknown values read as CLOSE).
    pub const fn from_u8(n: u8) -> TcpState {
        if (n as usize) < STATES.len() {
            STATES[n as usize]
        } else {
            TcpState::Close
        }
    }

    /// `tcp_state_active`: states whose connections count as active.
    pub const fn is_active(self) -> bool {
        matches!(
            self,
            TcpState::Established | TcpState::SynSent | TcpState::SynRecv | TcpState::SynAck
        )
    }

    /// IPVS's default timeout for the state, in seconds (`tcp_timeouts`).
    pub const fn default_timeout_s(self) -> u32 {
        match self {
            TcpState::None => 2,
            TcpState::Established => 15 * 60,
            TcpState::SynSent => 2 * 60,
            TcpState::SynRecv => 60,
            TcpState::FinWait => 2 * 60,
            TcpState::TimeWait => 2 * 60,
            TcpState::Close => 10,
            TcpState::CloseWait => 60,
            TcpState::LastAck => 30,
            TcpState::Listen => 2 * 60,
            TcpState::SynAck => 120,
        }
    }

    /// Upper-case name as ipvsadm prints it.
    pub const fn name(self) -> &'static str {
        match self {
            TcpState::None => "NONE",
            TcpState::Established => "ESTABLISHED",
            TcpState::SynSent => "SYN_SENT",
            TcpState::SynRecv => "SYN_RECV",
            TcpState::FinWait => "FIN_WAIT",
            TcpState::TimeWait => "TIME_WAIT",
            TcpState::Close => "CLOSE",
            TcpState::CloseWait => "CLOSE_WAIT",
            TcpState::LastAck => "LAST_ACK",
            TcpState::Listen => "LISTEN",
            TcpState::SynAck => "SYNACK",
        }
    }
}

use TcpState::{
    Close as CL, CloseWait as CW, Established as ES, FinWait as FW, LastAck as LA, Listen as LI,
    SynRecv as SR, SynSent as SS, TimeWait as TW,
};

/// ip_vs_proto_tcp.c `tcp_states`, INPUT-ONLY rows, indexed by
/// [syn, fin, ack, rst][current state].
const INPUT_ONLY: [[TcpState; 11]; 4] = [
    /*        sNO sES sSS sSR sFW sTW sCL sCW sLA sLI sSA */
    /*syn*/
    [SR, ES, ES, SR, SR, SR, SR, SR, SR, SR, SR],
    /*fin*/ [CL, FW, SS, TW, FW, TW, CL, CW, LA, LI, TW],
    /*ack*/ [ES, ES, SS, ES, FW, TW, CL, CW, CL, LI, ES],
    /*rst*/ [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, CL],
];

/// The next state after a client packet with `flags` (`tcp_state_idx`:
/// RST beats SYN beats FIN beats ACK; none of them gives CLOSE).
pub const fn next_state(cur: TcpState, syn: bool, fin: bool, ack: bool, rst: bool) -> TcpState {
    let row = if rst {
        3
    } else if syn {
        0
    } else if fin {
        1
    } else if ack {
        2
    } else {
        return TcpState::Close;
    };
    INPUT_ONLY[row][cur as usize]
}

/// [`quiet`] by flags byte (`flags & 0x1f`: FIN 0x01, SYN 0x02, RST
/// 0x04, ACK 0x10): bit `state` set when the packet leaves that state as
/// it is.
const QUIET: [u16; 32] = {
    let mut t = [0u16; 32];
    let mut f = 0;
    while f < 32 {
        let (fin, syn, rst, ack) = (f & 0x01 != 0, f & 0x02 != 0, f & 0x04 != 0, f & 0x10 != 0);
        let mut cur = 0;
        while cur < STATES.len() {
            if !syn && next_state(STATES[cur], syn, fin, ack, rst) as usize == cur {
                t[f] |= 1 << cur;
            }
            cur += 1;
        }
        f += 1;
    }
    t
};

/// The hit path's TCP test: whether a client packet with TCP flags byte
/// `flags` changes nothing but the timeout of a connection in the state
/// stored as `state`: no SYN (which may reopen the connection), and
/// [`next_state`] gives the state back (an ACK in ESTABLISHED). False for
/// a byte that is not a state. The timeout is the state's as configured
/// (`Balancer::timeout_s`).
#[inline]
pub(crate) const fn quiet(state: u8, flags: u8) -> bool {
    state < 16 && QUIET[(flags & 0x1f) as usize] >> state & 1 != 0
}

/// Whether TCP flags byte `flags` is an ACK without FIN, SYN or RST: the
/// packets that leave ESTABLISHED as it is ([`quiet`] for that state, which
/// the hit path tests first).
#[inline]
pub(crate) const fn plain_ack(flags: u8) -> bool {
    flags & 0x17 == 0x10
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshake_and_teardown() {
        let s = next_state(TcpState::None, true, false, false, false);
        assert_eq!(s, TcpState::SynRecv);
        assert!(s.is_active());
        let s = next_state(s, false, false, true, false);
        assert_eq!(s, TcpState::Established);
        let s = next_state(s, false, true, true, false);
        assert_eq!(s, TcpState::FinWait);
        assert!(!s.is_active());
        let s = next_state(s, false, false, true, false);
        assert_eq!(s, TcpState::FinWait);
        assert_eq!(
            next_state(TcpState::Established, false, false, false, true),
            TcpState::Close
        );
        assert_eq!(
            next_state(TcpState::Established, false, false, false, false),
            TcpState::Close
        );
        assert_eq!(TcpState::Established.default_timeout_s(), 900);
        for (i, s) in STATES.iter().enumerate() {
            assert_eq!(TcpState::from_u8(i as u8), *s);
        }
    }

    #[test]
    fn quiet_agrees_with_the_state_machine() {
        for cur in 0..=255u8 {
            for flags in 0..=255u8 {
                let f = |bit: u8| flags & bit != 0;
                let want = match STATES.get(usize::from(cur)) {
                    Some(&state) => {
                        !f(0x02) && next_state(state, f(0x02), f(0x01), f(0x10), f(0x04)) == state
                    }
                    None => false,
                };
                assert_eq!(quiet(cur, flags), want, "state {cur}, flags {flags:#x}");
            }
        }
        // The common case, which the hit path tests first: an ACK without
        // FIN, SYN or RST keeps ESTABLISHED, and nothing else does.
        let es = TcpState::Established as u8;
        for flags in 0..=255u8 {
            assert_eq!(quiet(es, flags), plain_ack(flags), "flags {flags:#x}");
        }
        assert!(!quiet(es, 0x12), "a SYN takes the full path");
        assert!(!quiet(es, 0x11), "FIN: ESTABLISHED to FIN_WAIT");
    }
}
