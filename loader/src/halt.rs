//! The one halt path.
//!
//! Every error on the way to launch becomes a [`Halt`]: a stable [`HaltCode`] and a one-line
//! detail. [`HaltPlan::new`] decides, without side effects, what happens (console line, JSON
//! log line, wipes in order, failure event, final action); [`execute`] performs everything but
//! the end of the process and is what tests drive; [`halt`] executes then exits (service mode)
//! or syncs and powers off (PID 1 mode). It never returns, so nothing can be launched after it.

use std::io::Write;

use serde::Serialize;
use zeroize::Zeroize;

use crate::cel::{Event, EventLog, Sha384Value};

macro_rules! halt_codes {
    ($( $variant:ident = ($code:literal, $status:literal, $meaning:literal) ),+ $(,)?) => {
        /// Stable halt reason. The string code and the exit status never change meaning.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum HaltCode {
            $(
                #[doc = $meaning]
                $variant,
            )+
        }

        impl HaltCode {
            /// Every code, in documentation order.
            pub const ALL: &'static [HaltCode] = &[$(HaltCode::$variant),+];

            /// Stable SCREAMING_SNAKE code.
            pub fn code(&self) -> &'static str {
                match self { $(HaltCode::$variant => $code),+ }
            }

            /// Process exit status in service mode (documented in docs/halt-codes.md).
            pub fn exit_status(&self) -> i32 {
                match self { $(HaltCode::$variant => $status),+ }
            }

            /// One-line meaning.
            pub fn meaning(&self) -> &'static str {
                match self { $(HaltCode::$variant => $meaning),+ }
            }

            /// Parse a stable code string.
            pub fn from_code(s: &str) -> Option<HaltCode> {
                match s { $($code => Some(HaltCode::$variant),)+ _ => None }
            }
        }
    };
}

halt_codes! {
    ConfigInvalid = ("CONFIG_INVALID", 10, "The loader configuration is missing or invalid."),
    TeeUnavailable = ("TEE_UNAVAILABLE", 20, "No usable CPU TEE (or not the configured one)."),
    SimulationNotEnabled = ("SIMULATION_NOT_ENABLED", 21, "The simulated TEE was selected without being explicitly enabled."),
    EvidenceCollectFailed = ("EVIDENCE_COLLECT_FAILED", 22, "Collecting hardware evidence (quote, report, event log) failed."),
    TsmGenerationRace = ("TSM_GENERATION_RACE", 23, "Another writer changed the configfs-tsm report entry while the loader used it."),
    GpuUnattested = ("GPU_UNATTESTED", 24, "A GPU is present but could not be attested."),
    EnrollUnreachable = ("ENROLL_UNREACHABLE", 30, "The CA could not be reached."),
    EnrollTimeout = ("ENROLL_TIMEOUT", 31, "Enrollment did not complete in time."),
    EnrollRejected = ("ENROLL_REJECTED", 32, "The CA refused to certify this platform."),
    CaResponseInvalid = ("CA_RESPONSE_INVALID", 33, "The CA's answer was malformed or did not match the request."),
    KeyDerivationFailed = ("KEY_DERIVATION_FAILED", 34, "The loader's sealed or ephemeral keys could not be derived."),
    OrderUnavailable = ("ORDER_UNAVAILABLE", 40, "No order arrived before the deadline."),
    OrderInvalid = ("ORDER_INVALID", 41, "The order is malformed."),
    OrderSignature = ("ORDER_SIGNATURE", 42, "The order's signature does not verify."),
    OrderExpired = ("ORDER_EXPIRED", 43, "The order has expired."),
    OrderRollback = ("ORDER_ROLLBACK", 44, "The order's version is older than the highest accepted one."),
    PlatformMismatch = ("PLATFORM_MISMATCH", 45, "The platform's claims do not match the order's reference values."),
    GrantInvalid = ("GRANT_INVALID", 50, "A key grant could not be opened for this loader and order."),
    ComponentCorrupt = ("COMPONENT_CORRUPT", 51, "A sealed component failed authenticated decryption."),
    ComponentDigestMismatch = ("COMPONENT_DIGEST_MISMATCH", 52, "A component's digest differs from the order."),
    WorkdirFailed = ("WORKDIR_FAILED", 53, "The plaintext work area could not be created or wiped."),
    LaunchFailed = ("LAUNCH_FAILED", 60, "The engine sandbox could not be set up or the engine not started."),
    EngineFailed = ("ENGINE_FAILED", 70, "The engine exited unsuccessfully."),
    EngineTimeout = ("ENGINE_TIMEOUT", 71, "The engine ran past its wall-clock limit and was killed."),
    OutputFailed = ("OUTPUT_FAILED", 80, "Outputs could not be collected or encrypted."),
    ReportFailed = ("REPORT_FAILED", 81, "The run report could not be produced or published."),
}

impl std::fmt::Display for HaltCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

/// Longest detail kept, in bytes.
pub const MAX_DETAIL: usize = 512;

/// A halt: code and a one-line detail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("HALT {code}: {detail}")]
pub struct Halt {
    /// The reason.
    pub code: HaltCode,
    /// One line, printable, at most [`MAX_DETAIL`] bytes.
    pub detail: String,
}

impl Halt {
    /// New halt; the detail is made one printable line and bounded.
    pub fn new(code: HaltCode, detail: impl std::fmt::Display) -> Self {
        Halt {
            code,
            detail: one_line(&detail.to_string()),
        }
    }

    /// Stable code string.
    pub fn code(&self) -> &'static str {
        self.code.code()
    }
}

fn one_line(s: &str) -> String {
    let mut out = String::with_capacity(s.len().min(MAX_DETAIL));
    for c in s.chars() {
        let c = if c.is_control() { ' ' } else { c };
        if out.len() + c.len_utf8() > MAX_DETAIL {
            break;
        }
        out.push(c);
    }
    out
}

/// How the process ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HaltMode {
    /// Loader runs as a service: exit with the code's status.
    Service,
    /// Loader is PID 1: sync and power off.
    Pid1,
}

/// What the process does after wiping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinalAction {
    /// `exit(status)`; status is never 0.
    Exit(i32),
    /// `sync(); reboot(RB_POWER_OFF)`; never returns.
    PowerOff,
}

#[derive(Serialize)]
struct JsonLine<'a> {
    event: &'static str,
    code: &'a str,
    exit_status: i32,
    detail: &'a str,
}

/// The decided halt, with no effect performed yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HaltPlan {
    /// The halt.
    pub halt: Halt,
    /// `HALT <CODE>: <detail>` (no newline).
    pub console_line: String,
    /// One JSON object (no newline).
    pub json_line: String,
    /// Names of the wipes, in the order they run (last registered first).
    pub wipes: Vec<String>,
    /// Event extended into the event log.
    pub failure_event: Event,
    /// How the process ends.
    pub action: FinalAction,
}

impl HaltPlan {
    /// Decide the halt for `halt` in `mode` with the registered wipe names (registration order).
    pub fn new(halt: &Halt, mode: HaltMode, registered_wipes: &[String]) -> Self {
        let status = halt.code.exit_status();
        let json_line = serde_json::to_string(&JsonLine {
            event: "halt",
            code: halt.code(),
            exit_status: status,
            detail: &halt.detail,
        })
        .unwrap_or_default();
        HaltPlan {
            console_line: halt.to_string(),
            json_line,
            wipes: registered_wipes.iter().rev().cloned().collect(),
            failure_event: Event::Failure {
                code: halt.code().to_owned(),
                detail: halt.detail.clone(),
            },
            action: match mode {
                HaltMode::Service => FinalAction::Exit(status),
                HaltMode::Pid1 => FinalAction::PowerOff,
            },
            halt: halt.clone(),
        }
    }
}

type WipeFn = Box<dyn FnMut() -> Result<(), String> + Send>;
type ExtendFn = Box<dyn FnMut(&Sha384Value) -> Result<(), String> + Send>;

/// State the halt path needs: mode, wipes, event log, output streams.
pub struct HaltContext {
    mode: HaltMode,
    wipes: Vec<(String, WipeFn)>,
    /// The loader's event log; the pipeline records into it too.
    pub event_log: EventLog,
    extend: Option<ExtendFn>,
    console: Box<dyn Write + Send>,
    log: Box<dyn Write + Send>,
}

impl std::fmt::Debug for HaltContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HaltContext")
            .field("mode", &self.mode)
            .field("wipes", &self.wipe_names())
            .field("event_log", &self.event_log)
            .finish_non_exhaustive()
    }
}

impl HaltContext {
    /// Context writing the console line to stderr and the JSON line to stdout.
    pub fn new(mode: HaltMode) -> Self {
        Self::with_streams(
            mode,
            Box::new(std::io::stderr()),
            Box::new(std::io::stdout()),
        )
    }

    /// Context with explicit console and log streams (tests, log files).
    pub fn with_streams(
        mode: HaltMode,
        console: Box<dyn Write + Send>,
        log: Box<dyn Write + Send>,
    ) -> Self {
        HaltContext {
            mode,
            wipes: Vec::new(),
            event_log: EventLog::default(),
            extend: None,
            console,
            log,
        }
    }

    /// Halt mode.
    pub fn mode(&self) -> HaltMode {
        self.mode
    }

    /// Register a wipe; wipes run last-registered first.
    pub fn register_wipe(
        &mut self,
        name: impl Into<String>,
        f: impl FnMut() -> Result<(), String> + Send + 'static,
    ) {
        self.wipes.push((name.into(), Box::new(f)));
    }

    /// Register secret material to zeroize on halt.
    pub fn register_zeroize<T: Zeroize + Send + 'static>(
        &mut self,
        name: impl Into<String>,
        secret: std::sync::Arc<std::sync::Mutex<T>>,
    ) {
        self.register_wipe(name, move || {
            let mut g = secret.lock().unwrap_or_else(|p| p.into_inner());
            g.zeroize();
            Ok(())
        });
    }

    /// Hardware extend of a digest into the runtime register (RTMR3 / PCR).
    pub fn set_extender(
        &mut self,
        f: impl FnMut(&Sha384Value) -> Result<(), String> + Send + 'static,
    ) {
        self.extend = Some(Box::new(f));
    }

    /// Extend `digest` into the hardware runtime register, when an extender is
    /// set (TDX RTMR3 / TPM PCR); without one the event log's software
    /// register is the only record.
    pub fn extend_register(&mut self, digest: &Sha384Value) -> Result<(), String> {
        match &mut self.extend {
            Some(f) => f(digest),
            None => Ok(()),
        }
    }

    /// Names of registered wipes in registration order.
    pub fn wipe_names(&self) -> Vec<String> {
        self.wipes.iter().map(|(n, _)| n.clone()).collect()
    }

    /// The plan for `h` in this context.
    pub fn plan(&self, h: &Halt) -> HaltPlan {
        HaltPlan::new(h, self.mode, &self.wipe_names())
    }
}

/// What [`execute`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HaltOutcome {
    /// Each wipe and its result, in the order run.
    pub wipes: Vec<(String, Result<(), String>)>,
    /// Digest of the failure event.
    pub event_digest: Sha384Value,
    /// Result of the hardware extend, if an extender is set.
    pub extended: Option<Result<(), String>>,
    /// How the process must end.
    pub action: FinalAction,
}

/// Perform the plan's effects except ending the process: print, wipe, record and extend.
/// Wipes that fail are reported but do not stop the others. Wipes run once.
pub fn execute(h: &Halt, ctx: &mut HaltContext) -> HaltOutcome {
    let plan = ctx.plan(h);
    let _ = writeln!(ctx.console, "{}", plan.console_line);
    let _ = ctx.console.flush();
    let _ = writeln!(ctx.log, "{}", plan.json_line);
    let _ = ctx.log.flush();
    let mut wipes = Vec::new();
    while let Some((name, mut f)) = ctx.wipes.pop() {
        let r = f();
        if let Err(e) = &r {
            let _ = writeln!(ctx.console, "halt: wipe {name} failed: {}", one_line(e));
        }
        wipes.push((name, r));
    }
    let event_digest = ctx.event_log.record(plan.failure_event);
    let extended = ctx.extend.as_mut().map(|f| f(&event_digest));
    HaltOutcome {
        wipes,
        event_digest,
        extended,
        action: plan.action,
    }
}

/// Halt: execute the plan, then exit (service) or power off (PID 1). Never returns.
pub fn halt(h: &Halt, ctx: &mut HaltContext) -> ! {
    let outcome = execute(h, ctx);
    finish(outcome.action)
}

/// End the process as `action` says.
pub fn finish(action: FinalAction) -> ! {
    match action {
        FinalAction::Exit(status) => std::process::exit(if status == 0 { 1 } else { status }),
        FinalAction::PowerOff => crate::pid1::power_off(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    impl Buf {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    #[test]
    fn codes_are_unique_and_stable() {
        let mut codes = std::collections::HashSet::new();
        let mut statuses = std::collections::HashSet::new();
        for c in HaltCode::ALL {
            assert!(codes.insert(c.code()));
            assert!(statuses.insert(c.exit_status()));
            assert!(c.exit_status() > 1 && c.exit_status() < 125);
            assert_eq!(HaltCode::from_code(c.code()), Some(*c));
        }
        assert_eq!(HaltCode::ALL.len(), 26);
        assert_eq!(HaltCode::OrderExpired.code(), "ORDER_EXPIRED");
        assert_eq!(HaltCode::OrderExpired.exit_status(), 43);
    }

    #[test]
    fn docs_table_lists_every_code() {
        let doc = include_str!("../../docs/halt-codes.md");
        for c in HaltCode::ALL {
            let row = format!("| `{}` | {} |", c.code(), c.exit_status());
            assert!(doc.contains(&row), "docs/halt-codes.md lacks {row}");
        }
    }

    #[test]
    fn detail_is_one_bounded_line() {
        let h = Halt::new(HaltCode::OrderInvalid, "a\nb\r\x1b[2Jc");
        assert_eq!(h.to_string(), "HALT ORDER_INVALID: a b  [2Jc");
        let long = Halt::new(HaltCode::OrderInvalid, "é".repeat(1000));
        assert!(long.detail.len() <= MAX_DETAIL);
    }

    #[test]
    fn plan_service_and_pid1() {
        let h = Halt::new(HaltCode::ComponentDigestMismatch, "dataset lab");
        let wipes = vec!["workdir".to_string(), "keys".to_string()];
        let p = HaltPlan::new(&h, HaltMode::Service, &wipes);
        assert_eq!(
            p.console_line,
            "HALT COMPONENT_DIGEST_MISMATCH: dataset lab"
        );
        assert_eq!(
            p.json_line,
            r#"{"event":"halt","code":"COMPONENT_DIGEST_MISMATCH","exit_status":52,"detail":"dataset lab"}"#
        );
        assert_eq!(p.wipes, vec!["keys", "workdir"]);
        assert_eq!(p.action, FinalAction::Exit(52));
        let p1 = HaltPlan::new(&h, HaltMode::Pid1, &wipes);
        assert_eq!(p1.action, FinalAction::PowerOff);
    }

    #[test]
    fn execute_prints_wipes_records_and_extends() {
        let console = Buf::default();
        let log = Buf::default();
        let mut ctx = HaltContext::with_streams(
            HaltMode::Service,
            Box::new(console.clone()),
            Box::new(log.clone()),
        );
        let order = Arc::new(Mutex::new(Vec::<&'static str>::new()));
        let o1 = order.clone();
        ctx.register_wipe("workdir", move || {
            o1.lock().unwrap().push("workdir");
            Ok(())
        });
        let key = Arc::new(Mutex::new([0xAAu8; 32]));
        ctx.register_zeroize("keys", key.clone());
        let o2 = order.clone();
        ctx.register_wipe("broken", move || {
            o2.lock().unwrap().push("broken");
            Err("disk gone".into())
        });
        let extended = Arc::new(Mutex::new(None));
        let e2 = extended.clone();
        ctx.set_extender(move |d| {
            *e2.lock().unwrap() = Some(*d);
            Ok(())
        });
        let h = Halt::new(HaltCode::OrderExpired, "expired at 2024");
        let out = execute(&h, &mut ctx);
        assert_eq!(
            console.text().lines().next().unwrap(),
            "HALT ORDER_EXPIRED: expired at 2024"
        );
        assert!(console.text().contains("wipe broken failed: disk gone"));
        assert_eq!(log.text().lines().count(), 1);
        assert_eq!(*order.lock().unwrap(), vec!["broken", "workdir"]);
        assert!(key.lock().unwrap().iter().all(|b| *b == 0));
        assert_eq!(out.wipes.len(), 3);
        assert_eq!(out.wipes[0].1, Err("disk gone".to_string()));
        assert_eq!(out.action, FinalAction::Exit(43));
        assert_eq!(*extended.lock().unwrap(), Some(out.event_digest));
        let last = ctx.event_log.records().last().unwrap();
        assert!(matches!(&last.content, Event::Failure { code, .. } if code == "ORDER_EXPIRED"));
        assert_eq!(ctx.event_log.replay().unwrap(), ctx.event_log.register());
        // Wipes run once.
        let again = execute(&h, &mut ctx);
        assert!(again.wipes.is_empty());
    }
}
