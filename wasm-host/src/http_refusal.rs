//! The `wasi:http` a sandboxed component gets: linked, so components built with
//! HTTP support (a default componentize-js build imports `wasi:http`) load, and
//! refusing every outgoing request, so none of them reaches the network.

use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

/// Hooks whose `send_request` answers every request with `HttpRequestDenied`
/// before anything is resolved or connected.
pub(crate) struct RefuseOutgoing;

/// What `send_request` returns: the response and the future of its I/O.
type Sent = Box<
    dyn Future<
            Output = Result<
                (
                    http::Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), Error>> + Send>,
                ),
                Error,
            >,
        > + Send,
>;

impl WasiHttpHooks for RefuseOutgoing {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        _options: Option<RequestOptions>,
        _response_io: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> Sent {
        tracing::debug!(host = ?request.uri().host(), "refused an outgoing HTTP request of a transform");
        Box::new(async { Err(Error::HttpRequestDenied) })
    }
}
