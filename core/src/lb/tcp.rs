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

/// For each flags byte (`flags & 0x1f`: FIN 0x01, SYN 0x02, RST 0x04, ACK
/// 0x10), a bit per state that such a packet leaves as it is.
const KEEPS: [u32; 32] = {
    let mut keeps = [0u32; 32];
    let mut f = 0;
    while f < 32 {
        let (fin, syn, rst, ack) = (f & 0x01 != 0, f & 0x02 != 0, f & 0x04 != 0, f & 0x10 != 0);
        let mut cur = 0;
        while cur < STATES.len() {
            let new = next_state(STATES[cur], syn, fin, ack, rst);
            if new as usize == cur {
                keeps[f] |= 1 << cur;
            }
            cur += 1;
        }
        f += 1;
    }
    keeps
};

/// Whether a client packet with TCP flags byte `flags` leaves the state
/// stored as `cur` unchanged ([`next_state`] gives it back); false for a
/// byte that is not a state. One table lookup: the hit path's test for
/// "nothing to count".
#[inline]
pub(crate) const fn keeps_state(cur: u8, flags: u8) -> bool {
    cur < 32 && (KEEPS[(flags & 0x1f) as usize] >> cur) & 1 != 0
}

/// Each state's default timeout in wheel ticks, by state byte (the bytes
/// from 11 on are not states: CLOSE's, as [`TcpState::from_u8`] reads them).
const TIMEOUT_TICKS: [u32; 12] = {
    let mut t = [0u32; 12];
    let mut i = 0;
    while i < 12 {
        let secs = TcpState::from_u8(i as u8).default_timeout_s();
        t[i] = super::conn::ticks_for_secs(secs) as u32;
        i += 1;
    }
    t
};

/// [`TcpState::default_timeout_s`] of a stored state byte, in ticks.
#[inline]
pub(crate) const fn timeout_ticks(state: u8) -> u32 {
    let i = if (state as usize) < STATES.len() {
        state as usize
    } else {
        STATES.len()
    };
    TIMEOUT_TICKS[i]
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
    fn byte_tables_agree_with_the_state_machine() {
        for cur in 0..=255u8 {
            for flags in 0..=255u8 {
                let f = |bit: u8| flags & bit != 0;
                let want = usize::from(cur) < STATES.len() && {
                    let state = STATES[usize::from(cur)];
                    next_state(state, f(0x02), f(0x01), f(0x10), f(0x04)) == state
                };
                assert_eq!(keeps_state(cur, flags), want, "state {cur}, flags {flags:#x}");
            }
            let secs = TcpState::from_u8(cur).default_timeout_s();
            assert_eq!(
                u64::from(timeout_ticks(cur)),
                crate::lb::conn::ticks_for_secs(secs),
                "state byte {cur}"
            );
        }
    }
}
