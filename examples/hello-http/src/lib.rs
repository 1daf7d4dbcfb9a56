//! A berth HTTP function: every request gets a plain-text greeting that echoes
//! the method, the path and one header back.

use std::io::Write as _;

use wasip2::http::types::{
    Fields, IncomingRequest, Method, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

struct Hello;

wasip2::http::proxy::export!(Hello);

impl wasip2::exports::http::incoming_handler::Guest for Hello {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let method = request.method();
        let is_head = matches!(method, Method::Head);
        let method = match method {
            Method::Get => "GET".to_string(),
            Method::Head => "HEAD".to_string(),
            Method::Post => "POST".to_string(),
            Method::Put => "PUT".to_string(),
            Method::Delete => "DELETE".to_string(),
            Method::Connect => "CONNECT".to_string(),
            Method::Options => "OPTIONS".to_string(),
            Method::Trace => "TRACE".to_string(),
            Method::Patch => "PATCH".to_string(),
            Method::Other(m) => m,
        };
        let path = request.path_with_query().unwrap_or_else(|| "/".into());
        // x-echo wins over user-agent so a caller can choose what comes back.
        let headers = request.headers();
        let echoed = ["x-echo", "user-agent"].into_iter().find_map(|name| {
            let values = headers.get(name);
            values
                .first()
                .map(|v| format!("{name}: {}", String::from_utf8_lossy(v)))
        });
        let mut body = format!("Hello from a berth function!\nmethod: {method}\npath: {path}\n");
        if let Some(line) = echoed {
            body.push_str(&line);
            body.push('\n');
        }

        let fields = Fields::from_list(&[
            ("content-type".into(), b"text/plain".to_vec()),
            ("content-length".into(), body.len().to_string().into_bytes()),
        ])
        .expect("valid headers");
        let response = OutgoingResponse::new(fields);
        let outgoing = response.body().expect("body taken once");
        ResponseOutparam::set(response_out, Ok(response));

        // HEAD gets the headers (with the GET length) but no body: the host closes the
        // stream for it. A client that hangs up early closes it too, so write errors
        // end the request quietly instead of trapping.
        if !is_head {
            // The stream must be dropped before the body is finished.
            let mut out = outgoing.write().expect("stream taken once");
            // blocking_flush, not flush: the inherent wasi `flush` only starts one.
            let sent = out.write_all(body.as_bytes()).is_ok() && out.blocking_flush().is_ok();
            drop(out);
            if !sent {
                return;
            }
        }
        let _ = OutgoingBody::finish(outgoing, None);
    }
}
