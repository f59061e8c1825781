"""POST the finished task to its callback_url, with retries and exponential backoff."""

from __future__ import annotations

import asyncio
import logging

import httpx
import msgspec

from whisperx_api.security.outbound import OutboundError, parse_networks, post_json
from whisperx_api.settings import Settings
from whisperx_api.tasks.reads import TaskRecord
from whisperx_api.tasks.schemas import to_detail

logger = logging.getLogger(__name__)


async def deliver_callback(settings: Settings, task: TaskRecord) -> bool:
    """POST the task (a row of tasks/reads.py's DETAIL_COLUMNS, as GET /task/{id} shows it) to
    its callback URL; False if not delivered."""
    if not task.callback_url:
        return False
    task_id = task.id
    body = msgspec.json.encode(to_detail(task))
    allowed = parse_networks(settings.outbound_allowed_networks)
    async with httpx.AsyncClient(timeout=settings.callback_timeout_s) as client:
        for attempt in range(1, settings.callback_retries + 1):
            try:
                response = await post_json(client, task.callback_url, body, allowed)
                if response.status_code < 400:
                    logger.info("callback for task %s delivered (%s)", task_id, response.status_code)
                    return True
                reason = f"HTTP {response.status_code}"
                if 400 <= response.status_code < 500 and response.status_code not in (408, 429):
                    logger.warning("callback for task %s refused (%s); not retrying", task_id, reason)
                    return False
            except OutboundError as exc:
                logger.warning("callback for task %s blocked: %s", task_id, exc.message)
                return False
            except httpx.HTTPError as exc:
                reason = type(exc).__name__
            if attempt < settings.callback_retries:
                delay = settings.callback_backoff_s * 2 ** (attempt - 1)
                logger.info("callback for task %s failed (%s); retry %d in %.1fs", task_id, reason, attempt, delay)
                await asyncio.sleep(delay)
    logger.warning("callback for task %s not delivered after %d attempts", task_id, settings.callback_retries)
    return False
