"""Test helper: random vision transformers on tokens for the differential test of the back ends
(:func:`tests.random_nets.programs` draws one program in eight from here; :data:`tests.random_nets.COVERAGE`
says what they hold, under "Tokens: transformers").

Each program defines an encoder block (pre-norm attention and MLP units, as std/vit.arch writes
timm's), imports std/vit.arch for its vit_block, and a network that cuts a small map into at
most 16 tokens (attention's cost grows with their square), so that a token program costs less
than a map program.
"""

from __future__ import annotations

from hypothesis import strategies as st

TOKENS = "random_tokens"  # the network of a transformer program

# A transformer encoder on tokens (docs/language.md, "Tokens: transformers"), as std/vit.arch
# writes timm's: pre-norm residual units of attention and an MLP; the MLP and the layer scale as
# blocks or inline, the layer scale chosen by a condition, the drop-path rate an instance value.
TOKEN_BLOCKS = """
block tok_mlp(hidden, out_features) {{
    fc1 = linear(hidden)
    act = {act}
    fc2 = linear(out_features)
}}
block tok_scale(init_values) {{
    gamma = layer_scale(init_values)
}}
block tok_block(dim, heads, ratio = 2, qkv_bias = true, init_values = 0.0, dpr = 0.0) {{
    norm1 = layernorm(eps=1e-6)
    attn = {attn}
    ls1 = tok_scale(init_values) if init_values > 0 else identity()
    drop_path1 = drop_path(dpr)
    residual(identity)
    norm2 = layernorm({norm2})
    {mlp}
    {ls2}
    residual(identity)
}}
"""
TOKEN_ATTN = [
    "attention(heads, qkv_bias=qkv_bias)",
    "attention(num_heads=heads, qkv_bias=qkv_bias, proj_bias=false)",
]
TOKEN_MLP = [
    "mlp = tok_mlp(dim * ratio, dim)",
    "fc1 = linear(dim * ratio)  gelu  fc2 = linear(dim, bias=false)",  # inline, on one line
    "mlp = sequential(linear(dim * ratio), gelu(), linear(dim))",  # a group of token ops
]
TOKEN_LS2 = ["ls2 = layer_scale(init_values) if init_values > 0 else identity()", "drop_path2 = drop_path(dpr)", ""]
TOKEN_DPR = [
    "dpr=rate * index / (count - 1) if count > 1 else 0.0",  # timm's dpr
    "dpr=rate * net_index / net_count",
    "init_values=0.1 if index > 0 else 0.0",  # the first block has no layer scale
    "init_values=1e-5, qkv_bias=false",
]
TOKEN_TAIL = ["relu", "gelu", "tail = linear(dim)", "drop_path(0.1)", "scale = layer_scale(0.5)", "tnorm = layernorm()"]


@st.composite
def token_programs(draw: st.DrawFn) -> tuple[str, str]:
    """A random vision transformer: a map (through a conv stem or not) cut into patches, a class
    token and a position embedding or not, encoder blocks (a stage or single ones, std/vit.arch's
    vit_block among them), token ops in the network body, and a pool by the class token or by the mean."""
    blocks = TOKEN_BLOCKS.format(
        act=draw(st.sampled_from(["gelu", "gelu()"])),
        attn=draw(st.sampled_from(TOKEN_ATTN)),
        norm2=draw(st.sampled_from(["", "eps=1e-6", "affine=false"])),
        mlp=draw(st.sampled_from(TOKEN_MLP)),
        ls2=draw(st.sampled_from(TOKEN_LS2)),
    )
    dim, heads = draw(st.sampled_from([(8, 1), (8, 2), (12, 3), (16, 4)]))
    lines = []
    size = 8  # at most 16 tokens: attention's cost grows with their square
    if draw(st.booleans()):  # a stem of maps before the tokens (timm's HybridEmbed)
        stride = draw(st.sampled_from([1, 2]))
        lines += [f"conv1 = conv(4, k=3, s={stride}, p=1)", "bn1 = batchnorm()", "relu"]
        size //= stride
    patch = draw(st.sampled_from([p for p in (2, 4) if p <= size // 2]))
    lines.append(
        draw(
            st.sampled_from(
                [
                    f"patch_embed = patch_embed(dim, {patch})",
                    f"patch_embed = patch_embed(embed_dim=dim, patch_size={patch}, bias=false)",
                ]
            )
        )
    )
    prefix = int(draw(st.booleans()))
    if prefix:
        lines.append("cls_token = class_token()")
    tokens = (size // patch) ** 2 + prefix
    if draw(st.integers(0, 3)) > 0:
        skip = draw(st.sampled_from([0, prefix]))
        lines.append(f"pos_embed = pos_embed({tokens - skip}" + (f", skip={skip})" if skip else ")"))
    extra = ", ".join(draw(st.lists(st.sampled_from(TOKEN_DPR), max_size=1)))
    block = f"tok_block(dim, heads{', ' + extra if extra else ''})"
    if draw(st.booleans()):
        lines.append(f"blocks = stage({block}, repeat={draw(st.sampled_from(['1', '2', 'depth']))})")
    else:  # single blocks (no instance values there), the drawn one or the shipped vit_block
        lines += [f"b{i} = tok_block(dim, heads, ratio={i + 1})" for i in range(draw(st.integers(1, 2)))]
        if draw(st.booleans()):
            lines.append("vit = vit_block(dim, heads, mlp_ratio=2, init_values=0.1, dpr=rate)")
    lines += draw(st.lists(st.sampled_from(TOKEN_TAIL), max_size=2, unique=True))
    pool = draw(st.sampled_from(["token", "avg"] if prefix else ["avg"]))
    if pool == "token":
        lines += [
            "norm = layernorm(eps=1e-6)",
            draw(st.sampled_from(['pool = token_pool("token")', "pool = token_pool()"])),
        ]
    else:  # timm's global_pool="avg": the mean of the patch tokens, then fc_norm
        lines += [f'pool = token_pool("avg", prefix={prefix})', "fc_norm = layernorm(eps=1e-6)"]
    lines.append(draw(st.sampled_from(["head = linear(3)", "drop = dropout(rate)\n    head = linear(3)"])))
    body = "\n    ".join(lines)
    params = f"dim = {dim}, heads = {heads}, depth = 2, rate = 0.1"
    network = f"network {TOKENS}({params}) {{\n    input 3 x 8 x 8\n    {body}\n}}\n"
    return f'import "std/vit.arch"\n{blocks}{network}', TOKENS
