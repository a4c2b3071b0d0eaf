//! keepalived's sequence and list lines (`~SEQ`, `~SEQx`, `~LST`) in whole
//! configurations: generated instances, addresses, virtual servers and
//! real servers arrive at the sink as if written out.

mod common;

const TEXT: &str = r#"
$RS= \
    real_server 192.0.2.${N} 80 { \
        weight ${N} \
        TCP_CHECK { \
            connect_timeout 3 \
        } \
    }
$VI= \
    vrrp_instance VI_${ID} { \
        interface eth0 \
        virtual_router_id ${ID} \
        priority ${PRIO} \
        virtual_ipaddress { \
            ~SEQ(i, 10, 11) 192.0.2.${i}/24 \
            ~SEQx(j, 0xa, 0xb) 2001:db8::${ID}:${j} \
        } \
    }
~LST({ID, PRIO}, {52, 150}, {53, 120}) $VI
$VS= \
    virtual_server 198.51.100.${VIP} 80 { \
        lb_algo wlc \
        lb_kind DR \
        protocol TCP \
        ~SEQ(N, 1, 2) $RS \
    }
~LST(VIP, 10, 20) $VS
"#;

#[test]
fn generated_blocks_arrive_as_if_written_out() {
    let (rec, result) = common::parse("k.conf", TEXT);
    let summary = result.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(rec.warnings, Vec::<String>::new());
    let vrrp = |id, prio| {
        format!(
            "vrrp_instance VI_{id} vrid={id} prio={prio} int_cs=100 state=Backup if=Some(\"eth0\") auth=None vips=192.0.2.10,192.0.2.11,2001:db8::{id}:a,2001:db8::{id}:b,"
        )
    };
    let mut want = vec![vrrp(52, 150), vrrp(53, 120)];
    for vip in [10, 20] {
        let vs = rec
            .items
            .iter()
            .find(|i| i.starts_with(&format!("virtual_server Addr(198.51.100.{vip}, 80)")))
            .unwrap_or_else(|| panic!("virtual server {vip} in {:#?}", rec.items));
        assert!(vs.ends_with(" rs=2"), "{vs}");
        want.push(vs.clone());
        for n in 1..=2 {
            want.push(format!(
                "  real_server 192.0.2.{n} 80 weight={n} Tcp(timeout=Some(3s) retry=None dbr=None port=None)"
            ));
        }
    }
    assert_eq!(rec.items, want);
    assert_eq!(summary.items, 8);
}

#[test]
fn a_bad_specification_names_its_line() {
    let text =
        "vrrp_instance VI_1 {\n  virtual_ipaddress {\n    ~SEQ(i, 1, -1, 3) 192.0.2.${i}\n  }\n}\n";
    let (_, result) = common::parse("k.conf", text);
    let err = result.expect_err("a step away from the end is refused");
    let shown = err.to_string();
    assert!(shown.contains("k.conf:3:5"), "{shown}");
    assert!(shown.contains("~SEQ(i, 1, -1, 3)"), "{shown}");
}
