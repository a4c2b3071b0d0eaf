//! `vrlb-fw`: vrlb's VRRP core on the smoltcp stack over a TAP device, the
//! way appliance firmware runs it (one loop, fixed capacities; see
//! `vrlb_linux::firmware`). The flags stand in for the constants a
//! firmware image would carry: parsing them at start allocates (clap),
//! the loop that follows does not.

use std::net::Ipv4Addr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use clap::Parser;
use vrlb_core::time::Duration;
use vrlb_core::vrrp::{GarpConfig, Version};
use vrlb_linux::firmware::{FirmwareConfig, MAX_VIPS, PASSWORD_MAX, TAP_NAME_MAX, run};

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
    /// PASS password (VRRPv2; as keepalived, only the first 8 characters count).
    #[arg(long)]
    password: Option<String>,
    /// Do not preempt a lower-priority master.
    #[arg(long)]
    nopreempt: bool,
    /// A VIP (repeat for more, up to 8).
    #[arg(long = "vip", required = true)]
    vips: Vec<Ipv4Addr>,
    /// Seconds after becoming master before the second GARP burst (0: none).
    #[arg(long, default_value_t = 5.0)]
    garp_master_delay: f64,
    /// GARP messages per VIP in each burst.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u8).range(1..=255))]
    garp_master_repeat: u8,
    /// Seconds between GARP refresh bursts while master (0: off).
    #[arg(long, default_value_t = 0.0)]
    garp_master_refresh: f64,
    /// GARP messages per VIP in each refresh burst.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=255))]
    garp_master_refresh_repeat: u8,
    /// Seconds between two GARP messages (keepalived's vrrp_garp_interval).
    #[arg(long, default_value_t = 0.0)]
    garp_interval: f64,
}

fn parse_mac(s: &str) -> Result<[u8; 6], String> {
    let mut mac = [0u8; 6];
    let mut parts = s.split(':');
    for byte in &mut mac {
        *byte = parts
            .next()
            .and_then(|p| u8::from_str_radix(p, 16).ok())
            .ok_or_else(|| format!("'{s}' is not a MAC address like 02:00:00:00:00:01"))?;
    }
    if parts.next().is_some() {
        return Err(format!("'{s}' is not a MAC address like 02:00:00:00:00:01"));
    }
    Ok(mac)
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

/// Seconds from a flag, within `0..=max`, as a Duration.
fn seconds(flag: &str, value: f64, max: f64) -> Result<Duration, String> {
    if !(0.0..=max).contains(&value) {
        return Err(format!("--{flag} must be 0..{max} seconds, not {value}"));
    }
    Ok(Duration::from_micros((value * 1e6).round() as u64))
}

/// The board's configuration from its flags, every capacity checked.
fn config(args: Args) -> Result<FirmwareConfig, String> {
    let cs = (args.advert_int * 100.0).round();
    if !(1.0..=4095.0).contains(&cs) {
        return Err(format!(
            "--advert-int must be 0.01..40.95 s, not {}",
            args.advert_int
        ));
    }
    let tap = heapless::String::try_from(args.tap.as_str()).map_err(|_| {
        format!(
            "--tap '{}': a device name has at most {TAP_NAME_MAX} characters",
            args.tap
        )
    })?;
    let vips = heapless::Vec::from_slice(&args.vips).map_err(|_| {
        format!(
            "--vip given {} times: this firmware holds at most {MAX_VIPS} VIPs",
            args.vips.len()
        )
    })?;
    let password = args.password.map(|p| {
        let bytes = p.as_bytes();
        if bytes.len() > PASSWORD_MAX {
            // keepalived.conf(5) auth_pass: only the first 8 characters are used.
            log::warn!("--password: only its first {PASSWORD_MAX} bytes are used");
        }
        let n = bytes.len().min(PASSWORD_MAX);
        heapless::Vec::from_slice(&bytes[..n]).unwrap_or_default()
    });
    Ok(FirmwareConfig {
        tap,
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
        password,
        preempt: !args.nopreempt,
        vips,
        garp: GarpConfig {
            delay: seconds("garp-master-delay", args.garp_master_delay, 3600.0)?,
            repeat: args.garp_master_repeat,
            refresh: seconds("garp-master-refresh", args.garp_master_refresh, 86_400.0)?,
            refresh_repeat: args.garp_master_refresh_repeat,
        },
        garp_interval: seconds("garp-interval", args.garp_interval, 60.0)?,
    })
}

/// Log lines to stderr, one per record (no allocation: `Arguments` are
/// written straight out).
struct Stderr;

impl log::Log for Stderr {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::Level::Info
    }
    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            eprintln!("vrlb-fw: {}: {}", record.level(), record.args());
        }
    }
    fn flush(&self) {}
}

fn main() -> ExitCode {
    static LOGGER: Stderr = Stderr;
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(log::LevelFilter::Info);
    }
    let cfg = match config(Args::parse()) {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("vrlb-fw: {e}");
            return ExitCode::FAILURE;
        }
    };
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        if let Err(e) = signal_hook::flag::register(sig, Arc::clone(&stop)) {
            eprintln!("vrlb-fw: cannot handle signal {sig}: {e}");
            return ExitCode::FAILURE;
        }
    }
    match run(&cfg, &stop) {
        Ok(stats) => {
            log::info!("stopped: {stats:?}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("vrlb-fw: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str]) -> Args {
        let base = [
            "vrlb-fw",
            "--tap",
            "tap0",
            "--addr",
            "192.0.2.1/24",
            "--vrid",
            "51",
        ];
        Args::try_parse_from(base.iter().chain(extra)).unwrap()
    }

    #[test]
    fn cli_is_well_formed() {
        <Args as clap::CommandFactory>::command().debug_assert();
    }

    #[test]
    fn eight_vips_fit_and_a_ninth_is_refused_by_name() {
        let vips: Vec<String> = (0..9).map(|i| format!("192.0.2.{}", 240 + i)).collect();
        let flags: Vec<&str> = vips.iter().flat_map(|v| ["--vip", v.as_str()]).collect();
        let cfg = config(args(&flags[..16])).unwrap();
        assert_eq!(cfg.vips.len(), 8);
        let e = config(args(&flags)).unwrap_err();
        assert_eq!(e, "--vip given 9 times: this firmware holds at most 8 VIPs");
    }

    #[test]
    fn flags_become_the_board_configuration() {
        let cfg = config(args(&[
            "--vip",
            "192.0.2.240",
            "--password",
            "123456789",
            "--garp-master-delay",
            "2.5",
            "--garp-interval",
            "0.01",
        ]))
        .unwrap();
        assert_eq!(cfg.password.as_deref(), Some(&b"12345678"[..]));
        assert_eq!(cfg.garp.delay, Duration::from_millis(2_500));
        assert_eq!(cfg.garp_interval, Duration::from_millis(10));
        assert_eq!(cfg.advert_interval_cs, 100);
        assert_eq!(cfg.tap.as_str(), "tap0");
    }

    #[test]
    fn bad_values_are_named() {
        let long = config(
            Args::try_parse_from([
                "vrlb-fw",
                "--tap",
                "a-very-long-tap-name",
                "--addr",
                "192.0.2.1/24",
                "--vrid",
                "51",
                "--vip",
                "192.0.2.240",
            ])
            .unwrap(),
        );
        assert_eq!(
            long.unwrap_err(),
            "--tap 'a-very-long-tap-name': a device name has at most 15 characters"
        );
        let int = config(args(&["--vip", "192.0.2.240", "--advert-int", "50"]));
        assert_eq!(
            int.unwrap_err(),
            "--advert-int must be 0.01..40.95 s, not 50"
        );
        let garp = config(args(&["--vip", "192.0.2.240", "--garp-interval=-1"]));
        assert_eq!(
            garp.unwrap_err(),
            "--garp-interval must be 0..60 seconds, not -1"
        );
        assert!(parse_mac("02:00:00:00:00").is_err());
        assert!(parse_mac("02:00:00:00:00:01:02").is_err());
        assert_eq!(parse_mac("02:00:00:00:00:0a"), Ok([2, 0, 0, 0, 0, 10]));
    }
}
