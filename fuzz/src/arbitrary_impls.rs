//! The fuzz targets' input types: each case decodes itself from the raw bytes
//! (`bytes::Reader`), so `arbitrary` only hands the bytes over.

use arbitrary::{Arbitrary, Result, Unstructured};

use crate::{MisuseCase, SigmoidCase, SoftmaxCase, UnaryCase};

macro_rules! from_bytes {
    ($($t:ty),*) => {$(
        impl<'a> Arbitrary<'a> for $t {
            fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
                let len = u.len();
                Ok(<$t>::decode(u.bytes(len)?))
            }
            fn arbitrary_take_rest(u: Unstructured<'a>) -> Result<Self> {
                Ok(<$t>::decode(u.take_rest()))
            }
        }
    )*};
}

from_bytes!(SigmoidCase, SoftmaxCase, UnaryCase, MisuseCase);
