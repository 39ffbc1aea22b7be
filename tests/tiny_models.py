"""Tiny neural models with random weights, built from configs and saved like the real ones.

The neural backends are tested through their real loading code (`from_pretrained` on a
folder), so each builder writes a complete model folder; nothing is downloaded. The
tokenizers are built with the `tokenizers` library from a small vocabulary.
"""

from __future__ import annotations

from pathlib import Path


def _clip_tokenizer():
    """A byte-level BPE CLIP tokenizer: one token per byte (with and without '</w>'), no merges."""
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import CLIPTokenizer

    alphabet = sorted(ByteLevel.alphabet())
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for ch in alphabet:
        vocab.setdefault(ch, len(vocab))
    for ch in alphabet:
        vocab.setdefault(ch + "</w>", len(vocab))
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)


def _t5_tokenizer():
    """A Unigram (sentencepiece-style) T5 tokenizer over lowercase letters, digits and a few pieces."""
    from transformers import T5TokenizerFast

    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -2.0)]
    for ch in "abcdefghijklmnopqrstuvwxyz0123456789,.-":
        pieces.append((ch, -5.0))
        pieces.append(("\u2581" + ch, -5.5))
    for word in ("product", "studio", "light", "soft", "backdrop", "photography", "warm", "clean"):
        pieces.append(("\u2581" + word, -3.0))
    return T5TokenizerFast(vocab=pieces, extra_ids=0)


def build_tiny_flux(folder: Path) -> Path:
    """A complete FLUX pipeline folder (model_index.json, transformer, VAE, CLIP, T5, scheduler).

    Shapes follow the real FLUX.1 wiring at toy size (see DESIGN.md, "Known pitfalls"):
    transformer `in_channels` = 4 x VAE `latent_channels` (2x2 patches packed), sum of
    `axes_dims_rope` = `attention_head_dim`, `pooled_projection_dim` = CLIP hidden size,
    `joint_attention_dim` = T5 `d_model`, a 4-block VAE (scale factor 8) with
    `shift_factor` set, and a CLIP tokenizer with `model_max_length`.
    """
    import torch
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

    folder = Path(folder)
    torch.manual_seed(0)
    tokenizer = _clip_tokenizer()
    tokenizer_2 = _t5_tokenizer()
    hidden, d_model, latent = 32, 32, 4

    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=37, num_hidden_layers=1, num_attention_heads=4,
        max_position_embeddings=77, projection_dim=hidden, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    ))
    text_encoder_2 = T5EncoderModel(T5Config(
        vocab_size=len(tokenizer_2), d_model=d_model, d_kv=8, d_ff=37, num_layers=1, num_heads=4,
        relative_attention_num_buckets=8, pad_token_id=tokenizer_2.pad_token_id, eos_token_id=tokenizer_2.eos_token_id,
        decoder_start_token_id=0,
    ))
    transformer = FluxTransformer2DModel(
        patch_size=1, in_channels=4 * latent, num_layers=1, num_single_layers=1, attention_head_dim=16,
        num_attention_heads=2, joint_attention_dim=d_model, pooled_projection_dim=hidden, guidance_embeds=True,
        axes_dims_rope=(4, 6, 6),
    )
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4, block_out_channels=(8, 8, 16, 16), layers_per_block=1,
        latent_channels=latent, norm_num_groups=4, sample_size=64, scaling_factor=1.5035, shift_factor=0.0609,
        use_quant_conv=False, use_post_quant_conv=False,
    )
    scheduler = FlowMatchEulerDiscreteScheduler(
        num_train_timesteps=1000, shift=3.0, use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15,
        base_image_seq_len=256, max_image_seq_len=4096,
    )
    pipe = FluxPipeline(scheduler=scheduler, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
                        text_encoder_2=text_encoder_2, tokenizer_2=tokenizer_2, transformer=transformer)
    folder.mkdir(parents=True, exist_ok=True)
    pipe.save_pretrained(folder)
    return folder
