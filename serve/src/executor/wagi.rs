//! The WAGI executor: a WASI preview-1 command module run once per request as a CGI script.
//! The request body is its stdin, the CGI variables join the image's environment, argv is the
//! path and the query's pairs, and its stdout (held to the body cap) is parsed as a CGI
//! response (see [`super::cgi`]).

use std::sync::Arc;

use bytes::Bytes;
use wasmtime::{Engine, InstancePre, Linker, Module, Store, StoreLimits};
use wasmtime_wasi::I32Exit;
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::pipe::{MemoryInputPipe, MemoryOutputPipe};

use super::cgi::{self, CgiResponse};
use super::{Failure, GuestSetup, Ticket, enforce_deadline, guest_error};

/// A store's data: the request's WASI state, limits and deadline.
pub struct WagiHost {
    wasi: WasiP1Ctx,
    limits: StoreLimits,
    ticket: Option<Arc<Ticket>>,
}

/// A route's WAGI function.
pub struct WagiFunction {
    engine: Engine,
    pre: InstancePre<WagiHost>,
    guest: Arc<GuestSetup>,
    max_output: usize,
}

/// Links `module` as a WAGI command; the reason when it cannot be one.
pub fn link(engine: &Engine, module: &Module) -> Result<InstancePre<WagiHost>, String> {
    if !module
        .exports()
        .any(|e| e.name() == "_start" && e.ty().func().is_some())
    {
        return Err(
            "it exports no _start function: WAGI runs a WASI command module (a program with a main), not a library or reactor"
                .into(),
        );
    }
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p1::add_to_linker_async(&mut linker, |h: &mut WagiHost| &mut h.wasi)
        .map_err(|e| format!("{e:#}"))?;
    linker.instantiate_pre(module).map_err(|e| {
        format!("it imports what WAGI does not give (only wasi_snapshot_preview1): {e:#}")
    })
}

/// A response read from a module's stdout.
pub struct Output {
    /// Status and headers.
    pub head: CgiResponse,
    /// All of stdout; the body starts at `head.body_start`.
    pub stdout: Bytes,
}

impl WagiFunction {
    /// The function of the linked `pre`; a response may be up to `max_output` bytes.
    pub fn new(
        engine: Engine,
        pre: InstancePre<WagiHost>,
        guest: Arc<GuestSetup>,
        max_output: usize,
    ) -> Self {
        WagiFunction {
            engine,
            pre,
            guest,
            max_output,
        }
    }

    /// Runs the module for one request: `env` (the CGI variables) after the image's, `args`,
    /// `body` as stdin.
    pub async fn handle(
        &self,
        env: Vec<(String, String)>,
        args: Vec<String>,
        body: Bytes,
        ticket: Arc<Ticket>,
    ) -> Result<Output, Failure> {
        let setup =
            |e: &dyn std::fmt::Display| Failure::Guest(format!("setting the module up: {e}"));
        // The CGI variables win over the image's variables of the same name.
        let mut spec = self.guest.spec.clone();
        spec.env.retain(|kv| {
            let key = kv.split_once('=').map_or(kv.as_str(), |(k, _)| k);
            !env.iter().any(|(k, _)| k == key)
        });
        let mut wasi =
            berth_runtime::sandbox::wasi::guest::builder(&spec, false).map_err(|e| setup(&e))?;
        // Room for the headers beyond the body cap, so a body of exactly the cap fits.
        let stdout = MemoryOutputPipe::new(self.max_output + 64 * 1024);
        wasi.args(&args)
            .envs(&env)
            .stdin(MemoryInputPipe::new(body))
            .stdout(stdout.clone())
            .stderr(self.guest.output.clone());
        let host = WagiHost {
            wasi: wasi.build_p1(),
            limits: self.guest.store_limits(),
            ticket: Some(ticket.clone()),
        };
        let mut store = Store::new(&self.engine, host);
        store.limiter(|h| &mut h.limits);
        enforce_deadline(&mut store, |h| h.ticket.as_ref());
        let run = async {
            let instance = self.pre.instantiate_async(&mut store).await?;
            let start = instance.get_typed_func::<(), ()>(&mut store, "_start")?;
            start.call_async(&mut store, ()).await
        };
        // A guest blocked in a host call never reaches an epoch check: the deadline holds
        // around it too.
        let run = tokio::time::timeout_at(ticket.deadline.into(), run);
        let Ok(ran) = run.await else {
            return Err(Failure::Timeout);
        };
        let exit = match ran {
            Ok(()) => 0,
            Err(e) => match e.downcast_ref::<I32Exit>() {
                Some(I32Exit(code)) => *code,
                None if ticket.timed_out() => return Err(Failure::Timeout),
                // A write past the pipe's room fails in the guest, which then traps.
                None if stdout.contents().len() > self.max_output => {
                    return Err(Failure::ResponseTooLarge(self.max_output as u64));
                }
                None => return Err(Failure::Guest(guest_error(&e))),
            },
        };
        drop(store);
        let out = stdout.contents();
        if out.len() > self.max_output + 64 * 1024 - 1 {
            return Err(Failure::ResponseTooLarge(self.max_output as u64));
        }
        if exit != 0 {
            return Err(Failure::Guest(format!(
                "the module exited with code {exit}"
            )));
        }
        let head = cgi::parse_response(&out)
            .map_err(|e| Failure::Guest(format!("the module's response is not CGI: {e}")))?;
        if out.len() - head.body_start > self.max_output {
            return Err(Failure::ResponseTooLarge(self.max_output as u64));
        }
        Ok(Output { head, stdout: out })
    }
}
