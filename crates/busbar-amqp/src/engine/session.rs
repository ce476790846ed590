//! Per-session state: windows, delivery-ids, unsettled outgoing deliveries, and the link
//! table (kept apart so a link and the session counters can be borrowed together).

use std::collections::HashMap;

use super::link::Link;

/// Marks an unused slot in the remote → local handle table.
const NO_HANDLE: u32 = u32::MAX;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SessionState {
    Begun,
    /// The broker sent `end` and waits for the client's; client frames are ignored.
    EndSent,
}

/// An unsettled delivery the broker sent, found again by its delivery-id.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OutgoingDelivery {
    pub handle: u32,
    pub link_serial: u32,
    pub token: u64,
}

#[derive(Debug)]
pub(crate) struct Session {
    pub core: SessionCore,
    pub links: LinkTable,
}

/// Everything about a session except its links.
#[derive(Debug)]
pub(crate) struct SessionCore {
    pub serial: u32,
    pub remote_channel: u16,
    pub state: SessionState,
    /// Transfer-id (per frame) the client's next transfer frame will carry.
    pub next_incoming_id: u32,
    /// What is left of the incoming window last announced (in frames).
    pub incoming_window: u32,
    /// Delivery-id expected on the client's next delivery.
    pub next_delivery_in: u32,
    /// Id of the broker's next delivery; shared by every link of the session.
    pub next_delivery_id: u32,
    /// Transfer-id (per frame) of the broker's next transfer frame.
    pub next_transfer_id: u32,
    /// The client's incoming window as the broker sees it now (in frames).
    pub remote_incoming_window: u32,
    pub remote_handle_max: u32,
    /// A send was refused for lack of window: announce credit again when it reopens.
    pub window_blocked: bool,
    /// Hashed with foldhash: the keys are the broker's own delivery-ids, not the
    /// client's choice, and SipHash was a noticeable share of each settlement.
    pub unsettled_out: HashMap<u32, OutgoingDelivery, foldhash::fast::RandomState>,
}

/// Links indexed by the broker's handle, and the client → broker handle map.
#[derive(Debug, Default)]
pub(crate) struct LinkTable {
    slots: Vec<Option<Link>>,
    remote_handles: Vec<u32>,
}

impl Session {
    pub fn new(
        serial: u32,
        remote_channel: u16,
        client_next_outgoing_id: u32,
        incoming_window: u32,
        remote_incoming_window: u32,
        remote_handle_max: u32,
    ) -> Self {
        Session {
            core: SessionCore {
                serial,
                remote_channel,
                state: SessionState::Begun,
                next_incoming_id: client_next_outgoing_id,
                incoming_window,
                next_delivery_in: client_next_outgoing_id,
                next_delivery_id: 0,
                next_transfer_id: 0,
                remote_incoming_window,
                remote_handle_max,
                window_blocked: false,
                unsettled_out: HashMap::default(),
            },
            links: LinkTable::default(),
        }
    }
}

impl SessionCore {
    /// Forgets the unsettled deliveries of a link that is gone.
    pub fn forget_unsettled(&mut self, handle: u32, link_serial: u32) {
        if !self.unsettled_out.is_empty() {
            self.unsettled_out
                .retain(|_, d| !(d.handle == handle && d.link_serial == link_serial));
        }
    }
}

impl LinkTable {
    /// Every link with its broker handle.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (u32, &mut Link)> {
        self.slots
            .iter_mut()
            .enumerate()
            .filter_map(|(h, slot)| Some((u32::try_from(h).ok()?, slot.as_mut()?)))
    }

    /// The broker handle mapped to a client handle.
    pub fn local_handle(&self, remote: u32) -> Option<u32> {
        match self.remote_handles.get(usize::try_from(remote).ok()?) {
            Some(&h) if h != NO_HANDLE => Some(h),
            _ => None,
        }
    }

    pub fn get(&self, handle: u32) -> Option<&Link> {
        self.slots.get(usize::try_from(handle).ok()?)?.as_ref()
    }

    pub fn get_mut(&mut self, handle: u32) -> Option<&mut Link> {
        self.slots.get_mut(usize::try_from(handle).ok()?)?.as_mut()
    }

    /// The link a client handle names, with the broker's handle.
    pub fn by_remote(&mut self, remote: u32) -> Option<(u32, &mut Link)> {
        let h = self.local_handle(remote)?;
        self.get_mut(h).map(|l| (h, l))
    }

    /// Lowest free broker handle not above `max`.
    pub fn free_handle(&self, max: u32) -> Option<u32> {
        let free = self
            .slots
            .iter()
            .position(Option::is_none)
            .unwrap_or(self.slots.len());
        u32::try_from(free).ok().filter(|&h| h <= max)
    }

    /// Stores a link under `handle` (from [`LinkTable::free_handle`]) and maps the
    /// client's handle to it. The caller has bounded both handles by the handle-max.
    pub fn insert(&mut self, handle: u32, link: Link) {
        let remote = link.remote_handle as usize;
        if self.remote_handles.len() <= remote {
            self.remote_handles.resize(remote + 1, NO_HANDLE);
        }
        if let Some(slot) = self.remote_handles.get_mut(remote) {
            *slot = handle;
        }
        let idx = handle as usize;
        if self.slots.len() <= idx {
            self.slots.resize_with(idx + 1, || None);
        }
        if let Some(slot) = self.slots.get_mut(idx) {
            *slot = Some(link);
        }
    }

    /// Removes a link and its handle mapping.
    pub fn remove(&mut self, handle: u32) -> Option<Link> {
        let link = self.slots.get_mut(handle as usize)?.take()?;
        if let Some(slot) = self.remote_handles.get_mut(link.remote_handle as usize)
            && *slot == handle
        {
            *slot = NO_HANDLE;
        }
        Some(link)
    }

    /// Every link with its broker handle.
    pub fn iter(&self) -> impl Iterator<Item = (u32, &Link)> {
        self.slots.iter().enumerate().filter_map(|(h, slot)| {
            let link = slot.as_ref()?;
            Some((u32::try_from(h).ok()?, link))
        })
    }

    /// Removes and returns every link.
    pub fn drain(&mut self) -> impl Iterator<Item = (u32, Link)> + '_ {
        self.remote_handles.clear();
        self.slots.drain(..).enumerate().filter_map(|(h, slot)| {
            let link = slot?;
            Some((u32::try_from(h).ok()?, link))
        })
    }
}
