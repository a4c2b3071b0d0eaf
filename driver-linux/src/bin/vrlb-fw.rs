//! `vrlb-fw`: vrlb's VRRP core on the smoltcp stack over a TAP device, the
//! way appliance firmware runs it (one loop, fixed capacities). The flags
//! stand in for constants a firmware image would carry.

use std::net::Ipv4Addr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use clap::Parser;
use vrlb_core::vrrp::Version;
use vrlb_linux::firmware::{FirmwareConfig, run};

/// Run one VRRP instance on smoltcp over a TAP device.
#[derive(Debug, Parser)]
#[command(name = "vrlb-fw", version)]
struct Args {
    /// The TAP device (created if missing; needs CAP_NET_ADMIN).
    #[arg(long)]
    tap: String,
    /// The board's MAC address.
    #[arg(long, default_value = "02:00:00:00:00:01", value_parser = parse_mac)]
    mac: [u8; 6],
    /// The board's address with prefix length, e.g. 192.0.2.10/24.
    #[arg(long, value_parser = parse_cidr)]
    addr: (Ipv4Addr, u8),
    /// Virtual router id.
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=255))]
    vrid: u8,
    /// Priority.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u8).range(1..=255))]
    priority: u8,
    /// VRRP version, 2 or 3.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u8).range(2..=3))]
    vrrp_version: u8,
    /// Advertisement interval in seconds (v3: centisecond steps).
    #[arg(long, default_value_t = 1.0)]
    advert_int: f64,
    /// PASS password (VRRPv2).
    #[arg(long)]
    password: Option<String>,
    /// Do not preempt a lower-priority master.
    #[arg(long)]
    nopreempt: bool,
    /// A VIP (repeat for more, up to 7).
    #[arg(long = "vip", required = true)]
    vips: Vec<Ipv4Addr>,
}

fn parse_mac(s: &str) -> Result<[u8; 6], String> {
    let parts: Vec<&str> = s.split(':').collect();
    let bytes: Result<Vec<u8>, _> = parts.iter().map(|p| u8::from_str_radix(p, 16)).collect();
    match bytes {
        Ok(b) if b.len() == 6 => Ok([b[0], b[1], b[2], b[3], b[4], b[5]]),
        _ => Err(format!("'{s}' is not a MAC address like 02:00:00:00:00:01")),
    }
}

fn parse_cidr(s: &str) -> Result<(Ipv4Addr, u8), String> {
    let (a, p) = s
        .split_once('/')
        .ok_or_else(|| format!("'{s}' needs a prefix length, e.g. 192.0.2.10/24"))?;
    let addr = a
        .parse()
        .map_err(|_| format!("'{a}' is not an IPv4 address"))?;
    let prefix = p
        .parse::<u8>()
        .ok()
        .filter(|p| *p <= 32)
        .ok_or_else(|| format!("'{p}' is not a prefix length 0..32"))?;
    Ok((addr, prefix))
}

fn main() -> ExitCode {
    let args = Args::parse();
    let cs = (args.advert_int * 100.0).round();
    if !(1.0..=4095.0).contains(&cs) {
        eprintln!("vrlb-fw: --advert-int must be 0.01..40.95 s");
        return ExitCode::FAILURE;
    }
    let cfg = FirmwareConfig {
        tap: args.tap,
        mac: args.mac,
        addr: args.addr.0,
        prefix_len: args.addr.1,
        vrid: args.vrid,
        priority: args.priority,
        version: if args.vrrp_version == 3 {
            Version::V3
        } else {
            Version::V2
        },
        advert_interval_cs: cs as u16,
        password: args.password,
        preempt: !args.nopreempt,
        vips: args.vips,
    };
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        if let Err(e) = signal_hook::flag::register(sig, Arc::clone(&stop)) {
            eprintln!("vrlb-fw: cannot handle signal {sig}: {e}");
            return ExitCode::FAILURE;
        }
    }
    match run(&cfg, stop, |line| eprintln!("vrlb-fw: {line}")) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vrlb-fw: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn cli_is_well_formed() {
        <super::Args as clap::CommandFactory>::command().debug_assert();
    }
}
