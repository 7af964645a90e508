//! Enforcement, the pure half: the desired kernel state. Applying it is the
//! agent's (`simpul_agent::enforce`).

pub mod plan;
