"""Observation encoders: per-camera image encoders and a proprio MLP (registered names).

Image encoders (``modality = 'image'``) map float images ``(N, C, h, w)`` to ``(N, out_dim)``;
proprio encoders (``modality = 'lowdim'``) map ``(N, in_dim)`` to ``(N, out_dim)``.
"""
from il_ros.models.encoders import conv4, mlp, resnet18  # noqa: F401 - registers them
from il_ros.models.encoders.keypoints import KeypointProjection

__all__ = ['KeypointProjection']
