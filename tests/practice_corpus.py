"""Correct answers to the practice items of lessons 01, 02, 06 and 07 (as in the solutions)."""

import math

import torch
import torch.nn.functional as F


def conv2d_im2col(x, weight, bias=None, stride=1, padding=0):
    n, _, h, w = x.shape
    c_out, _, kh, kw = weight.shape
    cols = F.unfold(x, (kh, kw), stride=stride, padding=padding)
    out = weight.reshape(c_out, -1) @ cols
    if bias is not None:
        out = out + bias.view(1, c_out, 1)
    h_out = (h + 2 * padding - kh) // stride + 1
    w_out = (w + 2 * padding - kw) // stride + 1
    return out.reshape(n, c_out, h_out, w_out)


def conv_cost(in_channels, out_channels, kernel_size, input_size, stride=1, padding=0,
              groups=1, bias=True):
    if in_channels % groups or out_channels % groups:
        raise ValueError(f"channels ({in_channels}, {out_channels}) must be divisible by groups")
    if input_size + 2 * padding < kernel_size:
        raise ValueError("the kernel does not fit into the padded input")
    out = (input_size + 2 * padding - kernel_size) // stride + 1
    per_output = (in_channels // groups) * kernel_size ** 2
    params = out_channels * per_output + (out_channels if bias else 0)
    return {"output_size": out, "params": params, "macs": out * out * out_channels * per_output}


def vgg_num_params(cfg, batch_norm=False, num_classes=1000):
    total, in_channels = 0, 3
    for v in cfg:
        if v == "M":
            continue
        total += v * in_channels * 9 + v
        if batch_norm:
            total += 2 * v
        in_channels = v
    for fan_in, fan_out in [(512 * 7 * 7, 4096), (4096, 4096), (4096, num_classes)]:
        total += fan_in * fan_out + fan_out
    return total


def vgg_conv_macs(cfg, input_size=224):
    macs, size, in_channels = 0, input_size, 3
    for v in cfg:
        if v == "M":
            size //= 2
        else:
            macs += size * size * v * in_channels * 9
            in_channels = v
    return macs


def interpolate_pos_embedding(pos_embed, new_grid):
    cls_entry, patch_entries = pos_embed[:, :1], pos_embed[:, 1:]
    n, dim = patch_entries.shape[1], patch_entries.shape[2]
    g = math.isqrt(n)
    if g * g != n:
        raise ValueError(f"{n} patch positions do not form a square grid")
    grid_image = patch_entries.reshape(1, g, g, dim).permute(0, 3, 1, 2)
    resized = F.interpolate(grid_image, size=(new_grid, new_grid), mode="bicubic",
                            align_corners=True)
    resized = resized.permute(0, 2, 3, 1).reshape(1, new_grid * new_grid, dim)
    return torch.cat([cls_entry, resized], dim=1)


def mean_attention_distance(weights, grid_size, patch_size):
    a = weights[..., 1:, 1:]
    a = a / a.sum(dim=-1, keepdim=True)
    rows, cols = torch.meshgrid(torch.arange(grid_size), torch.arange(grid_size), indexing="ij")
    centres = (torch.stack([rows, cols], dim=-1).reshape(-1, 2).to(a.dtype) + 0.5) * patch_size
    distances = torch.cdist(centres, centres).to(a.device)
    return (a * distances).sum(dim=-1).mean(dim=-1)


def cxcywh_to_xyxy(boxes):
    cx, cy, w, h = boxes.unbind(-1)
    return torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dim=-1)


def xyxy_to_cxcywh(boxes):
    x1, y1, x2, y2 = boxes.unbind(-1)
    return torch.stack([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], dim=-1)


def param_groups(model, lrs):
    members = {prefix: [] for prefix in lrs}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        matches = [p for p in lrs if name == p or name.startswith(p + ".")]
        if not matches:
            raise ValueError(f"trainable parameter {name!r} matches none of {list(lrs)}")
        members[max(matches, key=len)].append(param)
    return [{"params": members[p], "lr": lr} for p, lr in lrs.items() if members[p]]


def grad_cam(model, layer_name, images, classes=None):
    layer = model.get_submodule(layer_name)
    saved = {}

    def keep_activation(module, inputs, output):
        saved["activation"] = output.detach()

    def keep_gradient(module, grad_inputs, grad_outputs):
        saved["gradient"] = grad_outputs[0].detach()

    handles = [layer.register_forward_hook(keep_activation),
               layer.register_full_backward_hook(keep_gradient)]
    try:
        model.eval()
        logits = model(images.detach().requires_grad_(True))
        if classes is None:
            classes = logits.argmax(dim=1)
        logits.gather(1, classes[:, None]).sum().backward()
    finally:
        for handle in handles:
            handle.remove()
    model.zero_grad(set_to_none=True)
    alpha = saved["gradient"].mean(dim=(2, 3), keepdim=True)
    return F.relu((alpha * saved["activation"]).sum(dim=1))


SOLUTIONS = {
    "practice_conv2d_im2col": conv2d_im2col, "practice_conv_cost": conv_cost,
    "practice_vgg_num_params": vgg_num_params, "practice_vgg_conv_macs": vgg_conv_macs,
    "practice_interpolate_pos_embedding": interpolate_pos_embedding,
    "practice_attention_distance": mean_attention_distance,
    "box_cxcywh_to_xyxy": cxcywh_to_xyxy, "box_xyxy_to_cxcywh": xyxy_to_cxcywh,
    "param_groups": param_groups, "practice_grad_cam": grad_cam,
}
