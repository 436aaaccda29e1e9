"""Mapping and localization: the HD map file, the CNN landmark localizer, the pose EKF and the
localization node publishing ``/mapping/pose``; plus feature-map localization of real posed
images."""
