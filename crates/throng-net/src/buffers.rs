//! Buffers only while data is in flight: a connection takes a buffer from its thread's pool
//! when it has something to read and gives it back when done. An idle connection holds none.

use std::cell::RefCell;

/// One buffer: room for a whole TLS record (16 KiB of plaintext and its framing) and a whole
/// request head at the default limit; 20 KiB is also one of jemalloc's size classes.
pub const SIZE: usize = 20 * 1024;
/// Buffers a thread keeps for reuse; more are freed when given back.
const KEPT: usize = 256;

thread_local! {
    static POOL: RefCell<Vec<Box<[u8]>>> = const { RefCell::new(Vec::new()) };
}

/// A buffer of [`SIZE`] bytes with a filled part: `data[start..end]`.
pub struct Buffer {
    bytes: Option<Box<[u8]>>,
    pub start: usize,
    pub end: usize,
}

impl Buffer {
    pub fn take() -> Buffer {
        let bytes = POOL
            .with(|pool| pool.borrow_mut().pop())
            .unwrap_or_else(|| vec![0u8; SIZE].into_boxed_slice());
        Buffer {
            bytes: Some(bytes),
            start: 0,
            end: 0,
        }
    }

    pub fn filled(&self) -> &[u8] {
        &self.all()[self.start..self.end]
    }

    pub fn filled_mut(&mut self) -> &mut [u8] {
        let (start, end) = (self.start, self.end);
        &mut self.all_mut()[start..end]
    }

    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// The room after the filled part, moving the filled part to the front first if needed.
    pub fn spare(&mut self) -> &mut [u8] {
        if self.start > 0 && self.end == self.all().len() {
            let (start, end) = (self.start, self.end);
            self.all_mut().copy_within(start..end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let end = self.end;
        &mut self.all_mut()[end..]
    }

    pub fn consume(&mut self, n: usize) {
        self.start += n;
        if self.start >= self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Makes room for `size` bytes in all (the filled part moved to the front of a buffer of
    /// its own, freed when dropped rather than kept in the pool): for the rare message larger
    /// than a buffer, such as a ClientHello of many kilobytes, which must stay whole until read.
    pub fn grow(&mut self, size: usize) {
        if size <= self.all().len() {
            return;
        }
        let mut bigger = vec![0u8; size].into_boxed_slice();
        let filled = self.filled();
        if let Some(front) = bigger.get_mut(..filled.len()) {
            front.copy_from_slice(filled);
        }
        self.end -= self.start;
        self.start = 0;
        // The pooled one goes back to the pool.
        drop(Buffer {
            bytes: self.bytes.replace(bigger),
            start: 0,
            end: 0,
        });
    }

    /// All of its bytes: [`SIZE`] unless it grew.
    pub fn capacity(&self) -> usize {
        self.all().len()
    }

    fn all(&self) -> &[u8] {
        self.bytes.as_deref().unwrap_or(&[])
    }

    fn all_mut(&mut self) -> &mut [u8] {
        self.bytes.as_deref_mut().unwrap_or(&mut [])
    }
}

impl Drop for Buffer {
    fn drop(&mut self) {
        if let Some(bytes) = self.bytes.take().filter(|b| b.len() == SIZE) {
            POOL.with(|pool| {
                let mut pool = pool.borrow_mut();
                if pool.len() < KEPT {
                    pool.push(bytes);
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_grows_keeping_what_it_holds_and_is_not_pooled_after() {
        let mut b = Buffer::take();
        b.spare()[..SIZE].fill(3);
        b.end = SIZE;
        b.consume(10);
        b.grow(3 * SIZE);
        assert_eq!(b.capacity(), 3 * SIZE);
        assert_eq!(b.filled().len(), SIZE - 10);
        assert!(b.filled().iter().all(|&x| x == 3));
        assert_eq!(b.spare().len(), 2 * SIZE + 10);
        drop(b);
        assert_eq!(
            Buffer::take().capacity(),
            SIZE,
            "a grown buffer is not pooled"
        );
    }

    #[test]
    fn a_buffer_given_back_is_reused() {
        let first = Buffer::take();
        let address = first.all().as_ptr();
        drop(first);
        let second = Buffer::take();
        assert_eq!(second.all().as_ptr(), address);
        assert!(second.is_empty());
    }

    #[test]
    fn spare_room_moves_what_is_left_to_the_front() {
        let mut b = Buffer::take();
        b.spare()[..SIZE].fill(7);
        b.end = SIZE;
        b.consume(SIZE - 10);
        assert_eq!(b.spare().len(), SIZE - 10);
        assert_eq!(b.filled(), &[7u8; 10]);
    }
}
