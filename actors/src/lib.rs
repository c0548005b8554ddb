//! zeoraid's actors. The member, controller, recovery and client-session
//! actors land here in the following issues (see ARCHITECTURE.md for the
//! plan); the crate exists now so the layering (wire -> actors -> daemon) is
//! fixed from the start.
