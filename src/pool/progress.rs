//! A progress bar for long pool work (feature `progress`).

use std::borrow::Borrow;

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Pool, TaskError};

impl Pool {
    /// [`map`](Pool::map) with a progress bar on standard error, which advances as results
    /// arrive (a spinner when the input's length is unknown). Needs the `progress` feature.
    ///
    /// # Errors
    ///
    /// As [`map`](Pool::map).
    ///
    /// # Examples
    ///
    /// ```
    /// # multiproc::init();
    /// fn cube(x: u64) -> u64 {
    ///     x * x * x
    /// }
    ///
    /// let pool = multiproc::pool::Pool::new(2).unwrap();
    /// let v = pool.map_progress(cube, 0..1000u64).unwrap();
    /// assert_eq!(v[10], 1000);
    /// ```
    pub fn map_progress<A, R, I>(&self, f: fn(A) -> R, items: I) -> Result<Vec<R>, TaskError>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + Send + 'static,
        I: IntoIterator<Item: Borrow<A>>,
    {
        let it = self.imap(f, items);
        let bar = match it.total() {
            Some(n) => ProgressBar::new(n).with_style(
                ProgressStyle::with_template(
                    "{bar:40} {pos}/{len} tasks  {elapsed_precise} (eta {eta})",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            ),
            None => ProgressBar::new_spinner(),
        };
        let mut out = Vec::with_capacity(it.size_hint().0);
        for r in it {
            match r {
                Ok(v) => out.push(v),
                Err(e) => {
                    bar.abandon();
                    return Err(e);
                }
            }
            bar.inc(1);
        }
        bar.finish();
        Ok(out)
    }
}
