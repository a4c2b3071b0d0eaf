//! `use_vmac` and `vmac_xmit_base` (config/vrrp.rs, node/build/vmac.rs):
//! the forms keepalived.conf(5) gives, the MAC and name each comes to, the
//! warnings for what vrlb does not act on, and the interface a built
//! instance advertises on.

mod common;

use common::world::World;
use vrlb_core::config::{self, NoIncludes, Options, VmacAddress, VrrpInstance};
use vrlb_core::vrrp::Family;

/// What an instance's `use_vmac` parsed to: (name, MAC as written,
/// vmac_xmit_base).
type Parsed = (Option<String>, Option<VmacAddress>, bool);

#[derive(Default)]
struct Instances(Vec<Parsed>, Vec<String>);

impl config::Sink for Instances {
    fn vrrp_instance(&mut self, i: &VrrpInstance<'_>) -> Result<(), config::Kind> {
        let v = i.use_vmac.expect("use_vmac");
        self.0
            .push((v.name.map(Into::into), v.mac, i.vmac_xmit_base));
        Ok(())
    }
    fn diagnostic(&mut self, d: &config::Diagnostic) {
        self.1.push(d.to_string());
    }
}

fn parse(body: &str) -> Instances {
    let text = format!(
        "vrrp_instance V {{\n virtual_router_id 51\n interface eth0\n{body}\n virtual_ipaddress {{ 192.0.2.240 }}\n}}\n"
    );
    let mut out = Instances::default();
    config::parse(
        "v.conf",
        &text,
        &Options::default(),
        &mut out,
        &mut NoIncludes,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    out
}

#[test]
fn the_forms_of_use_vmac() {
    let bare = parse(" use_vmac");
    assert_eq!(bare.0, vec![(None, None, false)]);
    assert!(bare.1.is_empty(), "{:?}", bare.1);

    let named = parse(" use_vmac pub_a\n vmac_xmit_base");
    assert_eq!(named.0, vec![(Some("pub_a".into()), None, true)]);

    let keyword = parse(" use_vmac name group");
    assert_eq!(keyword.0, vec![(Some("group".into()), None, false)]);

    let full = parse(" use_vmac vm1 02:00:5E:00:01:07");
    assert_eq!(
        full.0,
        vec![(
            Some("vm1".into()),
            Some(VmacAddress::Full([2, 0, 0x5e, 0, 1, 7])),
            false
        )]
    );

    let five = parse(" use_vmac 02:aa:bb:cc:dd");
    assert_eq!(
        five.0,
        vec![(
            None,
            Some(VmacAddress::Prefix([2, 0xaa, 0xbb, 0xcc, 0xdd])),
            false
        )]
    );
}

#[test]
fn what_vrlb_does_not_act_on_is_warned_about() {
    let p = parse(" use_vmac vm1 netlink_notify_msg group 5");
    assert_eq!(p.0, vec![(Some("vm1".into()), None, false)]);
    assert_eq!(p.1.len(), 2, "{:?}", p.1);
    assert!(
        p.1[0].starts_with("v.conf:4:15: warning: ") && p.1[0].contains("netlink_notify_msg"),
        "{}",
        p.1[0]
    );
    assert!(
        p.1[1].starts_with("v.conf:4:34: warning: ") && p.1[1].contains("link group"),
        "{}",
        p.1[1]
    );
}

#[test]
fn unicast_with_a_vmac_advertises_on_the_base_as_keepalived_does() {
    let p = parse(" use_vmac\n unicast_peer {\n  192.0.2.2\n }");
    assert_eq!(p.0, vec![(None, None, true)]);
    assert_eq!(p.1.len(), 1, "{:?}", p.1);
    assert!(
        p.1[0].starts_with("v.conf:4:2: warning: ") && p.1[0].contains("vmac_xmit_base"),
        "{}",
        p.1[0]
    );
}

#[test]
fn the_mac_defaults_to_the_virtual_router_mac_of_the_family() {
    let mut v = parse(" use_vmac").0.remove(0);
    let conf = config::VmacConf {
        name: None,
        mac: v.1.take(),
        pos: config::Pos { line: 1, col: 1 },
    };
    assert_eq!(conf.mac(51, false), [0, 0, 0x5e, 0, 1, 51]);
    assert_eq!(conf.mac(51, true), [0, 0, 0x5e, 0, 2, 51]);
    let prefix = config::VmacConf {
        mac: Some(VmacAddress::Prefix([2, 1, 2, 3, 4])),
        ..conf
    };
    assert_eq!(prefix.mac(9, false), [2, 1, 2, 3, 4, 9]);
}

#[test]
fn a_built_instance_advertises_on_its_vmac_unless_xmit_base() {
    let text = "
vrrp_instance A { interface eth0\n virtual_router_id 51\n use_vmac\n virtual_ipaddress { 192.0.2.240 } }
vrrp_instance B { interface eth0\n virtual_router_id 51\n use_vmac\n virtual_ipaddress { 2001:db8::240 } }
vrrp_instance C { interface eth0\n virtual_router_id 53\n use_vmac vip53\n vmac_xmit_base\n virtual_ipaddress { 198.51.100.1 } }
vrrp_instance D { interface eth1\n virtual_router_id 51\n use_vmac\n virtual_ipaddress { 203.0.113.1 } }
";
    let World { node, env, .. } = World::built(text);
    let v4 = Family::V4;
    let v6 = Family::V6;
    assert_eq!(
        env.vmacs,
        vec![
            (
                "vrrp.51".into(),
                "eth0".into(),
                [0, 0, 0x5e, 0, 1, 51],
                v4,
                false
            ),
            (
                "vrrp6.51".into(),
                "eth0".into(),
                [0, 0, 0x5e, 0, 2, 51],
                v6,
                false
            ),
            (
                "vip53".into(),
                "eth0".into(),
                [0, 0, 0x5e, 0, 1, 53],
                v4,
                true
            ),
            // keepalived's third name for VRID 51.
            (
                "vrrp1.51".into(),
                "eth1".into(),
                [0, 0, 0x5e, 0, 1, 51],
                v4,
                false
            ),
        ]
    );
    let iface_of = |n: usize| {
        let (id, _) = node.instances().nth(n).unwrap();
        let iface = node.instance_iface(id).unwrap();
        env.interfaces[usize::from(iface.0)].clone()
    };
    assert_eq!(iface_of(0), "vrrp.51");
    assert_eq!(iface_of(1), "vrrp6.51");
    assert_eq!(iface_of(2), "eth0");
    assert_eq!(iface_of(3), "vrrp1.51");
}
