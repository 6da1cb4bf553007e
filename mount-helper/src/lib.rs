//! Namespace and mount plumbing for imafs, with no IMA knowledge.
