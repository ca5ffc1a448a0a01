# Serving *release* image: the runtime image plus exactly one exported bento, so what serves is
# immutable. Build with the extracted bento directory (`bentoml export` + untar) as the context:
#   docker build -f services/serving/release.Dockerfile \
#     --build-arg RUNTIME_IMAGE=mlops-serving-runtime:latest --build-arg MODEL_NAME=churn --build-arg MODEL_VERSION=3 \
#     -t mlops-serving:v3 <extracted bento dir>
ARG RUNTIME_IMAGE=mlops-serving-runtime:latest
FROM ${RUNTIME_IMAGE}
ARG MODEL_NAME=unknown
ARG MODEL_VERSION=unknown
LABEL org.opencontainers.image.title="mlops-serving" \
      mlops.model-version="${MODEL_VERSION}"
COPY --chown=10001:10001 . /home/app/bento
# The team's own packages (its config's model.requirements, listed alone in team-requirements.txt) go on top
# of the runtime, from the package index: each exactly as pinned, with no dependency the team did not pin too
# (pip check names one), and never moving a package of the runtime's (its pins are the constraints).
USER 0
RUN if [ -s /home/app/bento/src/team-requirements.txt ]; then \
      pip freeze --all > /tmp/runtime-pins.txt \
      && pip install --no-cache-dir --no-deps --constraint /tmp/runtime-pins.txt \
           --requirement /home/app/bento/src/team-requirements.txt \
      && pip check && rm /tmp/runtime-pins.txt; \
    fi
USER 10001:10001
# Nothing else is installed: a package the bento needs (the model's, as MLflow logged them) that the image
# lacks, or has at another version, stops the build here, naming it, not a server at its first import.
RUN python /home/app/bento/src/services/serving/requirements_check.py \
      /home/app/bento/env/python/requirements.txt "${MODEL_NAME}" "${MODEL_VERSION}"
