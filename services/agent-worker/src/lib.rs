//! Consumes ticket events in per-ticket order and proposes actions; executes released ones
