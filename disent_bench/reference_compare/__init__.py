"""Synthetic renderers against the official reference frames (``disent-bench data compare``).

Two datasets are rendered offline by :mod:`disent_bench.data` because their official files are large
downloads: dSprites and 3D Shapes. Their official repositories publish a GIF of real frames each
(``dsprites.gif`` from google-deepmind/dsprites-dataset, ``3dshapes.gif`` from deepmind/3d-shapes; the
team keeps copies in ``shared/reference/``). One module per dataset matches every real frame with its
closest synthetic image, reports how well they agree, and draws them side by side as a PNG:

* :mod:`disent_bench.reference_compare.dsprites`: intersection over union of the sprite pixels;
* :mod:`disent_bench.reference_compare.shapes3d`: mean absolute pixel error, overall and per surface.

Each module has ``reference_frames(gif_path)`` and ``compare_reference(gif_path, out_png=None, *,
progress=True)``. This package sits above :mod:`disent_bench.data` (it imports the renderers; the loaders
never import it), and it is the only place that draws the comparison pictures. The package itself imports
nothing, so naming :data:`DATASETS` costs nothing; import a dataset's module to compare.
"""

DATASETS = ("dsprites", "shapes3d")  # the datasets with a reference comparison, one module each
