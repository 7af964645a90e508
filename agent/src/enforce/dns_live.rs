//! The DNS responder's live mark: the redirect of the LAN's DNS matches
//! only while the LAN interface is in the set `inet simpul_dns live`, whose
//! elements time out (see [`simpul_core::enforce::dns_redirect`]). The
//! responder renews the mark after each probe it answers and removes it when
//! it stops; when the agent dies the mark runs out, and new DNS flows go to
//! the resolver the client asked while the policy's blocks stay in force.
//!
//! A renewal (add, delete, add: one transaction) goes to the kernel as one
//! netlink batch ([`super::netlink`]), not an `nft` process: about once a
//! second, a fork, an exec and a ruleset parse (some 3 ms of CPU) each
//! time would be the agent's steadiest cost at idle. `nft` is the fallback
//! when netlink fails, and it declares the table and set when they are not
//! there yet (the policy's rules declare them too), which netlink here
//! does not encode.

use std::sync::Mutex;
use std::time::Duration;

use simpul_core::enforce::dns_redirect::{
    lapse_script, refresh_script, DNS_TABLE, LIVE_SET, LIVE_TIMEOUT_SECS,
};

use super::apply::nft_apply;
use super::netlink::{ifname_key, Element, NetlinkError, NftSocket};

/// What the log last said about the mark, so each change is said once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Said {
    Nothing,
    Live,
    RenewFails,
    NotAnswering,
}

struct State {
    said: Said,
    /// After [`LiveMark::lapse`]: never renewed again.
    stopped: bool,
    /// Opened at the first renewal; dropped after a failure (it may hold
    /// stale answers) and opened again at the next.
    socket: Option<NftSocket>,
    /// Whether the last netlink failure was logged (once per run of them).
    said_fallback: bool,
}

/// The mark for one LAN interface.
pub struct LiveMark {
    lan: String,
    /// The mark's key in the set (None: a name netlink cannot carry; `nft`
    /// then says why).
    key: Option<Vec<u8>>,
    // Held while the kernel is asked, so a renewal in flight cannot put the mark
    // back after a stop removed it.
    state: Mutex<State>,
}

impl LiveMark {
    pub fn new(lan: &str) -> LiveMark {
        LiveMark {
            lan: lan.to_string(),
            key: ifname_key(lan),
            state: Mutex::new(State {
                said: Said::Nothing,
                stopped: false,
                socket: None,
                said_fallback: false,
            }),
        }
    }

    pub fn lan(&self) -> &str {
        &self.lan
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        match self.state.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// The responder answered its probe: renew the mark for another
    /// [`LIVE_TIMEOUT_SECS`]. A failure is logged; the mark then runs out.
    pub fn renew(&self) {
        let mut st = self.state();
        if st.stopped {
            return;
        }
        let timeout = Duration::from_secs(LIVE_TIMEOUT_SECS);
        let renewed = self
            .over_netlink(
                &mut st,
                |sock, e| sock.renew_element(DNS_TABLE, LIVE_SET, e),
                timeout,
            )
            .or_else(|_| nft_apply(&refresh_script(&self.lan)).map_err(|e| e.to_string()));
        match renewed {
            Ok(()) => {
                if st.said != Said::Live {
                    tracing::info!(
                        lan = %self.lan,
                        set = %format!("inet {DNS_TABLE} {LIVE_SET}"),
                        lapse_secs = LIVE_TIMEOUT_SECS,
                        "DNS redirect on: the LAN's DNS goes to the agent's responder while it answers, and lapses within {LIVE_TIMEOUT_SECS} s if it stops"
                    );
                    st.said = Said::Live;
                }
            }
            Err(e) => {
                if st.said != Said::RenewFails {
                    tracing::warn!(
                        lan = %self.lan,
                        error = %e,
                        "cannot renew the DNS redirect's live mark: the redirect lapses within {LIVE_TIMEOUT_SECS} s and the LAN's DNS goes to the resolvers its clients ask (still trying every second)"
                    );
                    st.said = Said::RenewFails;
                } else {
                    tracing::debug!(lan = %self.lan, error = %e, "DNS redirect's live mark still not renewed");
                }
            }
        }
    }

    /// The responder did not answer its probe: the mark is not renewed.
    pub fn not_answering(&self, why: &dyn std::fmt::Display) {
        let mut st = self.state();
        if st.stopped {
            return;
        }
        if st.said != Said::NotAnswering {
            tracing::warn!(
                lan = %self.lan,
                error = %why,
                "the DNS responder does not answer: the DNS redirect is not renewed and lapses within {LIVE_TIMEOUT_SECS} s; the LAN's DNS goes to the resolvers its clients ask until the responder answers again"
            );
            st.said = Said::NotAnswering;
        } else {
            tracing::debug!(lan = %self.lan, error = %why, "the DNS responder still does not answer");
        }
    }

    /// The responder stops: remove the mark now, and renew it no more.
    pub fn lapse(&self) {
        let mut st = self.state();
        if st.stopped {
            return;
        }
        st.stopped = true;
        let removed = self
            .over_netlink(
                &mut st,
                |sock, e| sock.remove_element(DNS_TABLE, LIVE_SET, e),
                Duration::ZERO,
            )
            .or_else(|_| nft_apply(&lapse_script(&self.lan)).map_err(|e| e.to_string()));
        match removed {
            Ok(()) => tracing::info!(
                lan = %self.lan,
                "DNS redirect off: the responder stopped; the LAN's DNS goes to the resolvers its clients ask (the policy's blocks stay in force)"
            ),
            Err(e) => tracing::warn!(
                lan = %self.lan,
                error = %e,
                "cannot remove the DNS redirect's live mark at stop; the redirect lapses within {LIVE_TIMEOUT_SECS} s by itself"
            ),
        }
    }

    /// `change` the mark's element over netlink; Err (logged once per run
    /// of failures) when the caller should fall back to `nft`.
    fn over_netlink(
        &self,
        st: &mut State,
        change: impl FnOnce(&mut NftSocket, &Element) -> Result<(), NetlinkError>,
        timeout: Duration,
    ) -> Result<(), ()> {
        let key = self.key.clone().ok_or(())?;
        let result = match st.socket.as_mut() {
            Some(sock) => change(sock, &Element { key, timeout }),
            None => NftSocket::open().and_then(|mut sock| {
                let r = change(&mut sock, &Element { key, timeout });
                st.socket = Some(sock);
                r
            }),
        };
        match result {
            Ok(()) => {
                st.said_fallback = false;
                Ok(())
            }
            Err(e) => {
                st.socket = None;
                // The first renewal before the policy declared the set
                // lands here (ENOENT): `nft` declares it.
                if !st.said_fallback {
                    tracing::info!(lan = %self.lan, error = %e, "the DNS redirect's live mark goes through the nft program this time");
                    st.said_fallback = true;
                }
                Err(())
            }
        }
    }
}
