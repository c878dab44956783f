"""Vision transformers written the way timm writes them (never timm itself): a PatchEmbed whose
``proj`` conv is flattened to tokens (with timm's size checks), an Attention with a fused ``qkv``,
``reshape``/``permute``/``unbind``, identity q/k norms and ``F.scaled_dot_product_attention``, an
Mlp, a LayerScale module (``x * self.gamma``), a LayerNorm subclass calling ``F.layer_norm``,
Blocks that take ``attn_mask=None``, and a VisionTransformer with ``cls_token`` and
``pos_embed`` parameters, ``_pos_embed`` (DeiT III's ``no_embed_class``: the position added
before the class token is put first), the dropout and identity layers timm keeps, and
``forward_head`` with a token or average pool. Also timm's Linear: an nn.Linear subclass that
calls ``F.linear`` itself."""

import torch
import torch.nn.functional as F
from torch import nn


class PatchEmbed(nn.Module):
    def __init__(self, img_size=32, patch_size=8, in_chans=3, embed_dim=16, bias=True):
        super().__init__()
        self.img_size = (img_size, img_size)
        self.patch_size = (patch_size, patch_size)
        self.flatten = True
        self.proj = nn.Conv2d(in_chans, embed_dim, patch_size, stride=patch_size, bias=bias)
        self.norm = nn.Identity()

    def forward(self, x):
        _, _, H, W = x.shape
        torch._assert(H == self.img_size[0], "input height does not match the model")
        torch._assert(W == self.img_size[1], "input width does not match the model")
        x = self.proj(x)
        if self.flatten:
            x = x.flatten(2).transpose(1, 2)
        return self.norm(x)


class Attention(nn.Module):
    def __init__(self, dim, num_heads=8, qkv_bias=False, qk_norm=False, attn_drop=0.0, proj_drop=0.0):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim**-0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.q_norm = nn.LayerNorm(self.head_dim) if qk_norm else nn.Identity()
        self.k_norm = nn.LayerNorm(self.head_dim) if qk_norm else nn.Identity()
        self.attn_drop = nn.Dropout(attn_drop)
        self.norm = nn.Identity()
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x, attn_mask: torch.Tensor | None = None, is_causal: bool = False):
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        q, k = self.q_norm(q), self.k_norm(k)
        x = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, dropout_p=self.attn_drop.p if self.training else 0.0, is_causal=is_causal
        )
        x = x.transpose(1, 2).reshape(B, N, C)
        x = self.norm(x)
        return self.proj_drop(self.proj(x))


class LayerScale(nn.Module):
    def __init__(self, dim, init_values=1e-5):
        super().__init__()
        self.gamma = nn.Parameter(init_values * torch.ones(dim))

    def forward(self, x):
        return x * self.gamma


class LayerNorm(nn.LayerNorm):
    def forward(self, x):
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)


class Mlp(nn.Module):
    def __init__(self, in_features, hidden_features):
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = nn.GELU()
        self.drop1 = nn.Dropout(0.0)
        self.norm = nn.Identity()
        self.fc2 = nn.Linear(hidden_features, in_features)
        self.drop2 = nn.Dropout(0.0)

    def forward(self, x):
        return self.drop2(self.fc2(self.norm(self.drop1(self.act(self.fc1(x))))))


class DropPath(nn.Module):
    def __init__(self, drop_prob=0.0, scale_by_keep=True):
        super().__init__()
        self.drop_prob = drop_prob
        self.scale_by_keep = scale_by_keep

    def forward(self, x):
        if self.drop_prob == 0.0 or not self.training:
            return x
        keep = 1 - self.drop_prob
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask.div_(keep) if self.scale_by_keep else x * mask


class Block(nn.Module):
    def __init__(self, dim, num_heads, mlp_ratio=4.0, qkv_bias=False, init_values=None, drop_path=0.0, **attn):
        super().__init__()
        self.norm1 = LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads=num_heads, qkv_bias=qkv_bias, **attn)
        self.ls1 = LayerScale(dim, init_values) if init_values else nn.Identity()
        self.drop_path1 = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.norm2 = LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.ls2 = LayerScale(dim, init_values) if init_values else nn.Identity()
        self.drop_path2 = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()

    def forward(self, x, attn_mask: torch.Tensor | None = None, is_causal: bool = False):
        x = x + self.drop_path1(self.ls1(self.attn(self.norm1(x), attn_mask=attn_mask, is_causal=is_causal)))
        x = x + self.drop_path2(self.ls2(self.mlp(self.norm2(x))))
        return x


class VisionTransformer(nn.Module):
    def __init__(
        self,
        img_size=32,
        patch_size=8,
        num_classes=10,
        global_pool="token",
        embed_dim=16,
        depth=3,
        num_heads=2,
        qkv_bias=True,
        init_values=None,
        no_embed_class=False,
        drop_path_rate=0.0,
        class_token=True,
        **attn,
    ):
        super().__init__()
        self.global_pool = global_pool
        self.num_prefix_tokens = 1 if class_token else 0
        self.no_embed_class = no_embed_class
        self.patch_embed = PatchEmbed(img_size, patch_size, 3, embed_dim)
        num_patches = (img_size // patch_size) ** 2
        self.cls_token = nn.Parameter(torch.randn(1, 1, embed_dim) * 0.02) if class_token else None
        embed_len = num_patches if no_embed_class or not class_token else num_patches + 1
        self.pos_embed = nn.Parameter(torch.randn(1, embed_len, embed_dim) * 0.02)
        self.pos_drop = nn.Dropout(p=0.0)
        self.patch_drop = nn.Identity()
        self.norm_pre = nn.Identity()
        dpr = [x.item() for x in torch.linspace(0, drop_path_rate, depth)]
        self.blocks = nn.Sequential(
            *[
                Block(embed_dim, num_heads, qkv_bias=qkv_bias, init_values=init_values, drop_path=dpr[i], **attn)
                for i in range(depth)
            ]
        )
        use_fc_norm = global_pool == "avg"
        self.norm = LayerNorm(embed_dim, eps=1e-6) if not use_fc_norm else nn.Identity()
        self.fc_norm = LayerNorm(embed_dim, eps=1e-6) if use_fc_norm else nn.Identity()
        self.head_drop = nn.Dropout(0.0)
        self.head = nn.Linear(embed_dim, num_classes)

    def _pos_embed(self, x):
        to_cat = [self.cls_token.expand(x.shape[0], -1, -1)] if self.cls_token is not None else []
        if self.no_embed_class:
            x = x + self.pos_embed
            if to_cat:
                x = torch.cat([*to_cat, x], dim=1)
        else:
            if to_cat:
                x = torch.cat([*to_cat, x], dim=1)
            x = x + self.pos_embed
        return self.pos_drop(x)

    def forward_features(self, x, attn_mask: torch.Tensor | None = None):
        x = self.patch_embed(x)
        x = self._pos_embed(x)
        x = self.patch_drop(x)
        x = self.norm_pre(x)
        x = self.blocks(x)
        return self.norm(x)

    def forward_head(self, x, pre_logits: bool = False):
        if self.global_pool == "avg":
            x = x[:, self.num_prefix_tokens :].mean(dim=1)
        else:
            x = x[:, 0]
        x = self.fc_norm(x)
        x = self.head_drop(x)
        return x if pre_logits else self.head(x)

    def forward(self, x, attn_mask: torch.Tensor | None = None):
        x = self.forward_features(x, attn_mask=attn_mask)
        return self.forward_head(x)


def deit3_like(**kwargs):
    """DeiT III's layout: layer scale on both branches, no position for the class token."""
    return VisionTransformer(init_values=1e-6, no_embed_class=True, **kwargs)


class Linear(nn.Linear):
    """timm's Linear: calls F.linear itself (timm does so for AMP and TorchScript)."""

    def forward(self, input):
        return F.linear(input, self.weight, self.bias)


class LinearHead(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(8)
        self.act = nn.ReLU(inplace=True)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten(1)
        self.classifier = Linear(8, 10)

    def forward(self, x):
        x = self.pool(self.act(self.bn(self.conv(x))))
        return self.classifier(self.flatten(x))
