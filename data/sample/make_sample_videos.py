"""Make the bundled sample's small synthetic H.264 videos (committed; re-run only to change them).

Each video shows bars that move with time and a background whose hue changes every second, so two
clips of the same video differ and a cut at the wrong time is visible. Keyframes every 2 s make
stream-copy cutting start before the window, as real Ego4D videos do.

    python data/sample/make_sample_videos.py data/sample/videos

The other sources' samples are made the same way, each video named with its duration (and `+audio`):

    python data/sample/make_sample_videos.py data/epic_kitchens_sample P01/videos/P01_01.MP4=20+audio P02/videos/P02_109.MP4=15
    python data/sample/make_sample_videos.py data/windows videos/kitchen.mp4=12+audio
"""

import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

WIDTH, HEIGHT, FPS = 320, 180, 10
GOP_FRAMES = 2 * FPS
AUDIO_RATE = 16000

# video_uid -> (duration in seconds, with audio): uids are in Ego4D's uuid format.
SAMPLE_VIDEOS = {
    "3c0dffd0-e38e-4643-bc48-d513943dc20b": (40, True),
    "9a4b6c1e-2f0d-4e7a-8b3c-5d6e7f809102": (30, False),
    "d2f1e0c9-8b7a-4655-9e4d-3c2b1a0f9e8d": (20, False),
}


def draw_frame(second: float, seed: int) -> np.ndarray:
    """One RGB frame: a hue per whole second plus two bars whose positions encode the time."""
    rng = np.random.default_rng(seed * 1000 + int(second))
    frame = np.empty((HEIGHT, WIDTH, 3), dtype=np.uint8)
    frame[:] = rng.integers(40, 200, size=3, dtype=np.uint8)
    x = int((second * 37) % (WIDTH - 20))
    y = int((second * 23) % (HEIGHT - 20))
    frame[:, x : x + 20] = (250, 250, 250)
    frame[y : y + 20, :] = (10, 10, 10)
    return frame


def write_video(path: Path, duration_s: int, with_audio: bool, seed: int) -> None:
    with av.open(str(path), "w", options={"movflags": "faststart"}) as out:
        out.flags |= av.container.Flags.bitexact.value  # no library version tags: same bytes everywhere
        video = out.add_stream("libx264", rate=FPS)
        video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        video.options = {"crf": "30", "preset": "medium", "g": str(GOP_FRAMES), "keyint_min": str(GOP_FRAMES),
                         "sc_threshold": "0", "threads": "1"}
        audio = None
        if with_audio:
            audio = out.add_stream("aac", rate=AUDIO_RATE, layout="mono")
            audio.bit_rate = 24000
        # Encode second by second, video then its audio, so the muxer interleaves them as cameras do:
        # a demuxer reading one window then touches one region of the file, not two.
        tone = tone_frames(duration_s) if audio is not None else iter(())
        for second in range(duration_s):
            for i in range(second * FPS, (second + 1) * FPS):
                frame = av.VideoFrame.from_ndarray(draw_frame(i / FPS, seed), format="rgb24")
                frame.pts, frame.time_base = i, Fraction(1, FPS)
                out.mux(video.encode(frame))
            for frame in tone_chunk(tone, second + 1):
                out.mux(audio.encode(frame))
        out.mux(video.encode(None))
        if audio is not None:
            for frame in tone:
                out.mux(audio.encode(frame))
            out.mux(audio.encode(None))


def tone_frames(duration_s: int):
    """Audio frames of a tone whose pitch steps every second, so the audio of two clips differs too."""
    samples_per_chunk = 1024
    total = duration_s * AUDIO_RATE
    for start in range(0, total, samples_per_chunk):
        t = np.arange(start, min(start + samples_per_chunk, total)) / AUDIO_RATE
        pitch = 220.0 + 40.0 * np.floor(t)
        chunk = (0.2 * np.sin(2 * np.pi * pitch * t)).astype(np.float32)[None, :]
        frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = AUDIO_RATE, start, Fraction(1, AUDIO_RATE)
        yield frame


def tone_chunk(frames, until_second: int):
    """The next audio frames up to `until_second` (the generator keeps its place between calls)."""
    for frame in frames:
        yield frame
        if (frame.pts + frame.samples) >= until_second * AUDIO_RATE:
            return


def parse_spec(spec: str) -> tuple[str, int, bool]:
    """`NAME=SECONDS[+audio]` -> (name, seconds, with audio)."""
    name, _, length = spec.partition("=")
    return name, int(length.removesuffix("+audio")), length.endswith("+audio")


def main(out_dir: str, specs: list[str]) -> None:
    videos = [parse_spec(s) for s in specs] or [(f"{uid}.mp4", d, a) for uid, (d, a) in SAMPLE_VIDEOS.items()]
    first_seed = 0 if not specs else len(SAMPLE_VIDEOS) + sum(map(ord, out_dir)) % 100  # other pictures than NLQ's
    for seed, (name, duration, with_audio) in enumerate(videos, first_seed):
        path = Path(out_dir) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        write_video(path, duration, with_audio, seed)
        print(f"{path}: {duration} s, {path.stat().st_size} bytes")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "data/sample/videos", sys.argv[2:])
