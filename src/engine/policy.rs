//! engine::policy (being built).
