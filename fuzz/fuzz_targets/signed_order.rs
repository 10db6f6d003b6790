//! Signed orders (DSSE JSON) and order TOML.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(env) = tl_policy::SignedOrder::from_json(data) {
        let _ = env.digest();
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = tl_policy::Order::from_toml(text);
    }
});
