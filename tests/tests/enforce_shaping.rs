//! Bandwidth enforcement with real traffic: the agent applies a policy in the
//! router namespace (tc HTB + nftables classification) and iperf3 measures
//! TCP throughput per unit in each direction.
//!
//! Rates in a policy are link-layer (what HTB counts), so the expected TCP
//! goodput is the allocation × 1448/1514; every assertion reports the
//! measured/expected ratio. One test function: the measurements must not
//! share the 2-core machine with each other.

mod common;
mod enforce_lab;

use common::is_root;
use enforce_lab::check_goodput as check;
use enforce_lab::{concurrently, Iperf, Topo, INTERNET, INTRANET, MBIT};

const POLICY: &str = r#"
version = 1
agency = "dinkes"
[allocation]
download = { rate_bps = 30000000, ceil_bps = 30000000 }
upload = { rate_bps = 24000000, ceil_bps = 24000000 }
[allocation.units.a]
download = { rate_bps = 10000000, ceil_bps = 30000000 }
upload = { rate_bps = 8000000, ceil_bps = 24000000 }
[allocation.units.b]
download = { rate_bps = 20000000, ceil_bps = 30000000 }
upload = { rate_bps = 16000000, ceil_bps = 24000000 }
"#;

#[test]
fn units_get_their_rates_borrow_up_to_ceil_and_intranet_is_uncapped() {
    assert!(is_root(), "enforcement tests need root (CI runs as root)");
    let mut t = Topo::new("es");
    t.iperf_server(&t.inet.clone(), 5201);
    t.iperf_server(&t.inet.clone(), 5202);
    t.iperf_server(&t.intra.clone(), 5201);
    let policy = t.write_policy("policy.toml", POLICY);
    t.apply_ok(&policy);

    let test = |ns: &str, server: &str, port: u16, download: bool| Iperf {
        ns: ns.to_string(),
        server: server.to_string(),
        port,
        download,
        secs: 5,
    };

    // Both units saturate: each gets its guaranteed rate (the rates sum to
    // the agency's ceil, so there is nothing to borrow).
    let down = concurrently(&[
        test(&t.a, INTERNET, 5201, true),
        test(&t.b, INTERNET, 5202, true),
    ]);
    check("unit a download, both busy", down[0], 10.0 * MBIT);
    check("unit b download, both busy", down[1], 20.0 * MBIT);
    let up = concurrently(&[
        test(&t.a, INTERNET, 5201, false),
        test(&t.b, INTERNET, 5202, false),
    ]);
    check("unit a upload, both busy", up[0], 8.0 * MBIT);
    check("unit b upload, both busy", up[1], 16.0 * MBIT);

    // Alone, a unit borrows up to its ceil (here the agency's ceil).
    let a_alone = test(&t.a, INTERNET, 5201, true).run();
    check("unit a download alone (ceil)", a_alone, 30.0 * MBIT);
    let b_alone = test(&t.b, INTERNET, 5202, false).run();
    check("unit b upload alone (ceil)", b_alone, 24.0 * MBIT);

    // A schedule window has its own rates: the same policy applied for a
    // time inside the window caps unit a at the window's 5 Mbit/s (outside
    // it, above, unit a reached 30).
    let scheduled = t.write_policy(
        "scheduled.toml",
        &format!(
            "{}\n[[schedules]]\nname = \"pagi\"\ndays = [\"mon\", \"tue\", \"wed\", \"thu\", \"fri\", \"sat\", \"sun\"]\nstart = \"00:00\"\nend = \"12:00\"\n[schedules.units.a]\ndownload = {{ rate_bps = 5000000, ceil_bps = 5000000 }}\nupload = {{ rate_bps = 8000000, ceil_bps = 24000000 }}\n",
            POLICY.replace("version = 1", "version = 2")
        ),
    );
    t.apply_ok_at(&scheduled, &["--at", "2026-11-27T09:00:00+07:00"]);
    let in_window = test(&t.a, INTERNET, 5201, true).run();
    check("unit a download in schedule window", in_window, 5.0 * MBIT);

    // Intranet traffic is exempt from the internet caps.
    let intranet = Iperf {
        secs: 3,
        ..test(&t.a, INTRANET, 5201, true)
    }
    .run();
    eprintln!(
        "unit a download from the intranet: {:.1} Mbit/s",
        intranet / MBIT
    );
    assert!(
        intranet > 5.0 * 30.0 * MBIT,
        "intranet download {:.1} Mbit/s is not far above the 30 Mbit/s agency ceil: ratio {:.2}",
        intranet / MBIT,
        intranet / (30.0 * MBIT)
    );
}
