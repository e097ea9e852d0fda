//! `sdp cost`: what a deployment costs a month on AWS, line by line. Units per event follow the
//! platform's own calls ([`usage`], checked against the real handlers on moto by
//! tests/tests/it/cost.rs), sizes are measured on `sdp load`'s traffic ([`sizes`]), prices come
//! from `regions/prices/<region>.yaml` ([`prices`]), and what no test can measure is stated
//! with every estimate ([`estimate::assumed`]).

pub mod estimate;
pub mod prices;
pub mod sizes;
pub mod usage;
