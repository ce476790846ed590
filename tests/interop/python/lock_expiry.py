"""Scenario 5: with LockDuration PT5S, settling after the lock expired fails with
MessageLockLostError and the message comes back with delivery_count incremented.

The SDK checks locked_until_utc locally before settling, so the first round exercises the
broker's x-opt-locked-until and its redelivery. The second round hides the local expiry so the
complete really reaches the broker, which must refuse it (com.microsoft:message-lock-lost)."""

import datetime
import time

from azure.servicebus import ServiceBusMessage
from azure.servicebus.exceptions import MessageLockLostError

from sbcommon import ScenarioFailure, check, client, expect_eq, expect_no_message, log, receive_exactly, run, scenario_args

LOCK_SECONDS = 5
SLEEP_SECONDS = 6.5


def complete_expecting_lock_lost(receiver, message, what):
    try:
        receiver.complete_message(message)
    except MessageLockLostError as error:
        log(f"{what}: MessageLockLostError as expected: {error}")
        return
    raise ScenarioFailure(f"{what}: complete after lock expiry succeeded; expected MessageLockLostError")


def main():
    conn, queue, _ = scenario_args()
    with client(conn, retry_total=0) as sb:
        with sb.get_queue_sender(queue) as sender:
            sender.send_messages(ServiceBusMessage("slow worker", message_id="slow-1"))
        with sb.get_queue_receiver(queue) as receiver:
            [first] = receive_exactly(receiver, 1)
            expect_eq(first.delivery_count, 0, "first delivery_count")
            now = datetime.datetime.now(datetime.timezone.utc)
            locked_until = first.locked_until_utc
            check(locked_until is not None, "locked_until_utc is not set (x-opt-locked-until missing)")
            remaining = (locked_until - now).total_seconds()
            check(LOCK_SECONDS - 2.5 <= remaining <= LOCK_SECONDS + 1.5,
                  f"lock should last about {LOCK_SECONDS}s, locked_until_utc is {remaining:.2f}s away")
            time.sleep(SLEEP_SECONDS)
            complete_expecting_lock_lost(receiver, first, "round 1 (SDK-side expiry check)")

            [second] = receive_exactly(receiver, 1)
            expect_eq(second.message_id, "slow-1", "redelivered message_id")
            expect_eq(second.delivery_count, 1, "delivery_count after one lock expiry")
            check(str(second.lock_token) != str(first.lock_token), "redelivery reused the expired lock token")
            # Pretend the lock is still valid locally so the settlement goes to the broker.
            second._expiry = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)
            time.sleep(SLEEP_SECONDS)
            complete_expecting_lock_lost(receiver, second, "round 2 (broker-side refusal)")

            [third] = receive_exactly(receiver, 1)
            expect_eq(third.message_id, "slow-1", "message_id after the refused complete")
            expect_eq(third.delivery_count, 2, "delivery_count after two lock expiries")
            receiver.complete_message(third)
            expect_no_message(receiver)


if __name__ == "__main__":
    run(main)
