//! Enforcement, the pure half: the desired kernel state ([`plan`]) and, when
//! only rates changed, the batch that changes the HTB trees in place
//! ([`inplace`]); the resets for a connection refused by name ([`reset`]).
//! Applying them is the agent's (`simpul_agent::enforce`).

pub mod dns_redirect;
pub mod inplace;
pub mod plan;
pub mod reset;
