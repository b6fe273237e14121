"""The peer: a standard Pipecat Twilio bot (FastAPI, Media Streams, Silero VAD, OpenAI services).

Run by bench/peer.py with `.venv-peer/bin/python bench/peer_bot.py --port P --openai URL`
(Pipecat lives in its own virtualenv; this file imports nothing of the line's). As in
Pipecat's examples/twilio-chatbot: a webhook answers the call with <Connect><Stream> TwiML,
the stream's first messages give the stream and call SIDs (Pipecat's own parser), and one
pipeline per call runs transport in → OpenAI STT → user aggregator (Silero VAD, a
silence-timeout end of turn) → OpenAI LLM → OpenAI TTS → transport out → assistant aggregator.
The webhook is served at the path the emulator rings (/webhook/incoming_call), not at `/`.
"""

from __future__ import annotations

import argparse
import os
import sys

import uvicorn
from fastapi import FastAPI, Request, WebSocket
from fastapi.responses import Response
from loguru import logger
from pipecat.audio.vad.silero import SileroVADAnalyzer
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.runner import PipelineRunner
from pipecat.pipeline.task import PipelineParams, PipelineTask
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.aggregators.llm_response_universal import (
    LLMContextAggregatorPair,
    LLMUserAggregatorParams,
)
from pipecat.runner.utils import parse_telephony_websocket
from pipecat.serializers.twilio import TwilioFrameSerializer
from pipecat.services.openai.llm import OpenAILLMService
from pipecat.services.openai.stt import OpenAISTTService
from pipecat.services.openai.tts import OpenAITTSService
from pipecat.transcriptions.language import Language
from pipecat.transports.websocket.fastapi import FastAPIWebsocketParams, FastAPIWebsocketTransport
from pipecat.turns.user_stop import SpeechTimeoutUserTurnStopStrategy
from pipecat.turns.user_turn_strategies import UserTurnStrategies

SYSTEM = ("אתה הנציג הטלפוני של העסק. ענה בעברית, בקצרה ובנימוס; התשובה תוקרא בקול, "
          "אז בלי סימנים מיוחדים.")
SAMPLE_RATE = 8000  # Twilio's μ-law
OPENAI_PCM_RATE = 24000  # OpenAI's `pcm` speech; the transport resamples it to Twilio's rate


def build_app(port: int, openai_url: str) -> FastAPI:
    """The bot's webhook and Media Streams socket; services pointed at `openai_url`."""
    app = FastAPI()
    key = os.environ.get("OPENAI_API_KEY", "sk-peer-0000000000")

    @app.post("/webhook/incoming_call")
    async def incoming_call(_request: Request) -> Response:
        twiml = (f'<?xml version="1.0" encoding="UTF-8"?><Response><Connect>'
                 f'<Stream url="wss://127.0.0.1:{port}/ws"/></Connect></Response>')
        return Response(twiml, media_type="application/xml")

    @app.post("/webhook/call_status")
    async def call_status(_request: Request) -> Response:
        return Response(status_code=204)

    @app.websocket("/ws")
    async def media_stream(websocket: WebSocket) -> None:
        await websocket.accept()
        _kind, call = await parse_telephony_websocket(websocket)
        serializer = TwilioFrameSerializer(
            stream_sid=call["stream_id"], call_sid=call["call_id"],
            # the caller hangs up; no REST hang-up to api.twilio.com at the pipeline's end
            params=TwilioFrameSerializer.InputParams(auto_hang_up=False))
        transport = FastAPIWebsocketTransport(websocket=websocket, params=FastAPIWebsocketParams(
            audio_in_enabled=True, audio_out_enabled=True, add_wav_header=False,
            serializer=serializer))
        stt = OpenAISTTService(api_key=key, base_url=openai_url, language=Language.HE,
                               settings=OpenAISTTService.Settings(model="gpt-4o-transcribe"))
        llm = OpenAILLMService(api_key=key, base_url=openai_url,
                               settings=OpenAILLMService.Settings(model="gpt-4.1-mini"))
        tts = OpenAITTSService(api_key=key, base_url=openai_url, sample_rate=OPENAI_PCM_RATE,
                               settings=OpenAITTSService.Settings(model="gpt-4o-mini-tts",
                                                                  voice="alloy"))
        context = LLMContext([{"role": "system", "content": SYSTEM}])
        user, assistant = LLMContextAggregatorPair(context, user_params=LLMUserAggregatorParams(
            vad_analyzer=SileroVADAnalyzer(),
            user_turn_strategies=UserTurnStrategies(stop=[SpeechTimeoutUserTurnStopStrategy()])))
        pipeline = Pipeline([transport.input(), stt, user, llm, tts, transport.output(),
                             assistant])
        task = PipelineTask(pipeline, params=PipelineParams(
            audio_in_sample_rate=SAMPLE_RATE, audio_out_sample_rate=SAMPLE_RATE))

        @transport.event_handler("on_client_disconnected")
        async def on_client_disconnected(_transport, _client):
            await task.cancel()

        await PipelineRunner(handle_sigint=False).run(task)

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--openai", required=True, help="an OPENAI_BASE_URL (…/v1)")
    args = parser.parse_args()
    logger.remove()
    logger.add(sys.stderr, level=os.environ.get("PEER_LOG_LEVEL", "WARNING"))
    uvicorn.run(build_app(args.port, args.openai), host="127.0.0.1", port=args.port,
                log_level="warning")


if __name__ == "__main__":
    main()
