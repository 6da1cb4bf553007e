//! engine::pcr (being built).
