//! A response body that reports the size of every data frame as it passes, so the layers that
//! account for response bytes see watch streams too, not only complete responses.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

/// What a [`Metered`] body calls with each data frame's length.
pub type Meter = Box<dyn FnMut(usize) + Send + Sync>;

pin_project_lite::pin_project! {
    /// `inner`, calling `on_data(len)` for each data frame.
    #[derive(Debug)]
    pub struct Metered<B, F> {
        #[pin]
        inner: B,
        on_data: F,
    }
}

impl<B, F> Metered<B, F> {
    pub(crate) fn new(inner: B, on_data: F) -> Self {
        Metered { inner, on_data }
    }
}

impl<B, F> Body for Metered<B, F>
where
    B: Body<Data = Bytes>,
    F: FnMut(usize),
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.project();
        let frame = ready!(this.inner.poll_frame(cx));
        if let Some(Ok(data)) = frame.as_ref().map(|f| f.as_ref().map(Frame::data_ref))
            && let Some(data) = data
        {
            (this.on_data)(data.len());
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
